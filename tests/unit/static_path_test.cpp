// resolve_static_path against a real temp tree: traversal, encodings, symlinks, index files.
#include "worker/static_path.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace preforkd {
namespace {

namespace fs = std::filesystem;

class StaticPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                       "/preforkd_static_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    // The root must be canonical, and TMPDIR itself may be behind a symlink.
    char real[PATH_MAX];
    ASSERT_NE(::realpath(tmpl.c_str(), real), nullptr);
    base_ = real;
    root_ = base_ + "/root";

    fs::create_directories(root_ + "/a");
    fs::create_directories(root_ + "/dir");
    fs::create_directories(root_ + "/empty");
    fs::create_directories(root_ + "/idxdir/index.html");  // index.html that is a directory
    fs::create_directories(root_ + "/locked");
    write(root_ + "/index.html", "root index");
    write(root_ + "/a/b.txt", "b");
    write(root_ + "/dir/index.html", "dir index");
    write(root_ + "/sp ace.txt", "space");
    write(root_ + "/back\\slash.txt", "backslash");
    write(root_ + "/locked/x.txt", "x");
    write(base_ + "/secret", "outside");
    write(base_ + "/outdir_index/index.html", "outside index");

    fs::create_symlink(base_ + "/secret", root_ + "/escape");
    fs::create_symlink("../secret", root_ + "/escape_rel");
    fs::create_symlink(base_, root_ + "/escape_dir");
    fs::create_symlink("a/b.txt", root_ + "/inner");
    fs::create_symlink("dir", root_ + "/innerdir");
    fs::create_directories(root_ + "/evilidx");
    fs::create_symlink(base_ + "/secret", root_ + "/evilidx/index.html");
    ASSERT_EQ(::mkfifo((root_ + "/fifo").c_str(), 0644), 0);
  }

  static void TearDownTestSuite() {
    if (base_.empty()) return;
    std::error_code ec;
    fs::permissions(root_ + "/locked", fs::perms::owner_all, ec);
    fs::remove_all(base_, ec);  // does not follow the symlinks
  }

  static void write(const std::string& path, const std::string& body) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << body;
  }

  static ResolvedPath resolve(std::string_view target) { return resolve_static_path(root_, target); }

  static std::string base_;
  static std::string root_;
};

std::string StaticPathTest::base_;
std::string StaticPathTest::root_;

TEST_F(StaticPathTest, RootMapsToIndex) {
  const ResolvedPath r = resolve("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.path, root_ + "/index.html");
}

TEST_F(StaticPathTest, PlainFile) {
  const ResolvedPath r = resolve("/a/b.txt");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.path, root_ + "/a/b.txt");
}

TEST_F(StaticPathTest, DirectoryMapsToItsIndex) {
  EXPECT_EQ(resolve("/dir/").path, root_ + "/dir/index.html");
  EXPECT_EQ(resolve("/dir/").status, 200);
}

TEST_F(StaticPathTest, DirectoryWithoutTrailingSlashIs301) {
  // nginx redirects "/dir" to "/dir/" so that the index page's relative links work.
  EXPECT_EQ(resolve("/dir").status, 301);
  EXPECT_EQ(resolve("/dir").path, "");
  EXPECT_EQ(resolve("/empty").status, 301) << "whether or not it has an index";
  EXPECT_EQ(resolve("/innerdir").status, 301) << "a symlink to a directory too";
}

TEST_F(StaticPathTest, DirectoryWithoutIndexIs404) { EXPECT_EQ(resolve("/empty/").status, 404); }

TEST_F(StaticPathTest, IndexNamesAreTriedInOrder) {
  write(root_ + "/two/second.html", "second");
  write(root_ + "/two/third.html", "third");
  const std::vector<std::string> names = {"first.html", "second.html", "third.html"};
  ResolvedPath r = resolve_normalized_path(root_, "/two/", names);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.path, root_ + "/two/second.html");
  EXPECT_EQ(r.mapped, root_ + "/two/second.html");
  EXPECT_EQ(resolve_normalized_path(root_, "/two/", {}).status, 404) << "no index names: no index";
  EXPECT_EQ(resolve_normalized_path(root_, "/two/", {"none.html"}).status, 404);
  // An index that escapes is refused, also when it is the only candidate left.
  EXPECT_EQ(resolve_normalized_path(root_, "/evilidx/", {"missing.html", "index.html"}).status, 403);
}

TEST_F(StaticPathTest, MappedSiblingsAreCheckedLikeFiles) {
  EXPECT_EQ(resolve_mapped_file(root_, root_ + "/a/b.txt").status, 200);
  EXPECT_EQ(resolve_mapped_file(root_, root_ + "/a/b.txt.gz").status, 404);
  EXPECT_EQ(resolve_mapped_file(root_, root_ + "/escape").status, 403);
  EXPECT_EQ(resolve_mapped_file(root_, root_ + "/dir").status, 403) << "not a regular file";
}

TEST(NormalizePath, DecodesOnceAndCollapses) {
  std::string out;
  EXPECT_EQ(normalize_path("/a", &out), 200);
  EXPECT_EQ(out, "/a");
  for (std::string_view same : {"//a", "/%61", "/./a", "///./%61", "/%2e/a"}) {
    ASSERT_EQ(normalize_path(same, &out), 200) << same;
    EXPECT_EQ(out, "/a") << same;
  }
  EXPECT_EQ(normalize_path("/a/b/", &out), 200);
  EXPECT_EQ(out, "/a/b/") << "the trailing slash means a directory";
  EXPECT_EQ(normalize_path("/a/b/.", &out), 200);
  EXPECT_EQ(out, "/a/b/");
  EXPECT_EQ(normalize_path("/", &out), 200);
  EXPECT_EQ(out, "/");
  EXPECT_EQ(normalize_path("//", &out), 200);
  EXPECT_EQ(out, "/");
  EXPECT_EQ(normalize_path("/%252e", &out), 200);
  EXPECT_EQ(out, "/%2e") << "decoded once only";
  EXPECT_EQ(normalize_path("/a%2fb", &out), 200);
  EXPECT_EQ(out, "/a/b");
}

TEST(NormalizePath, RefusesTraversalAndMalformedInput) {
  std::string out;
  for (std::string_view up : {"/..", "/a/..", "/%2e%2e/x", "/..%2fx", "/a/%2E%2E/"})
    EXPECT_EQ(normalize_path(up, &out), 403) << up;
  for (std::string_view bad : {"", "a", "%2fa", "/a%00b", "/%G1", "/%4"})
    EXPECT_EQ(normalize_path(bad, &out), 400) << bad;
}

TEST(NormalizePath, IsNormalizedAgreesWithNormalizePath) {
  for (std::string_view p : {"/", "/a", "/a/b", "/a/b/", "/a.b/c..d", "//a", "/a//b", "/./a", "/a/.", "/a/..",
                             "/%61", "a", "", "/.a", "/..a", "/a/b/./"}) {
    std::string out;
    const bool expected = normalize_path(p, &out) == 200 && out == p;
    EXPECT_EQ(is_normalized(p), expected) << p;
  }
}

TEST(PercentEncodePath, ReencodesWhatAPathMayNotHold) {
  EXPECT_EQ(percent_encode_path("/a b/c%d"), "/a%20b/c%25d");
  EXPECT_EQ(percent_encode_path("/x?y#z"), "/x%3Fy%23z");
  EXPECT_EQ(percent_encode_path("/\xff\r\n"), "/%FF%0D%0A");
  EXPECT_EQ(percent_encode_path("/ok-._~!$&'()*+,;=:@/"), "/ok-._~!$&'()*+,;=:@/");
  std::string out;
  ASSERT_EQ(normalize_path(percent_encode_path("/a b/%/\xc3\xa9"), &out), 200);
  EXPECT_EQ(out, "/a b/%/\xc3\xa9") << "round trip";
}

TEST_F(StaticPathTest, DotDotSegmentsAreForbidden) {
  EXPECT_EQ(resolve("/a/../a/b.txt").status, 403);
  EXPECT_EQ(resolve("/..").status, 403);
  EXPECT_EQ(resolve("/../secret").status, 403);
  EXPECT_EQ(resolve("/a/..").status, 403);
  EXPECT_EQ(resolve("/a/../").status, 403);
}

TEST_F(StaticPathTest, EncodedDotDotIsForbidden) {
  EXPECT_EQ(resolve("/%2e%2e/secret").status, 403);
  EXPECT_EQ(resolve("/%2E%2e/").status, 403);
  EXPECT_EQ(resolve("/.%2e/secret").status, 403);
  EXPECT_EQ(resolve("/..%2fsecret").status, 403);  // decodes to "/../secret"
  EXPECT_EQ(resolve("/a%2f..%2f..%2fsecret").status, 403);
}

TEST_F(StaticPathTest, DoubleEncodingIsDecodedOnlyOnce) {
  // "%252e%252e" decodes to the literal name "%2e%2e", which does not exist.
  EXPECT_EQ(resolve("/%252e%252e/secret").status, 404);
}

TEST_F(StaticPathTest, EncodedSlashActsAsSeparator) {
  // Decoding before splitting is what lets "..%2f" be caught; the price is that
  // "%2f" cannot name a file containing '/', which Linux forbids anyway.
  const ResolvedPath r = resolve("/a%2fb.txt");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.path, root_ + "/a/b.txt");
}

TEST_F(StaticPathTest, DotAndEmptySegmentsCollapse) {
  EXPECT_EQ(resolve("//a//./b.txt").path, root_ + "/a/b.txt");
  EXPECT_EQ(resolve("/./a/b.txt").status, 200);
  EXPECT_EQ(resolve("/%2e/a/b.txt").status, 200);
  EXPECT_EQ(resolve("/.").path, root_ + "/index.html");
  EXPECT_EQ(resolve("//dir//").path, root_ + "/dir/index.html");
}

TEST_F(StaticPathTest, TrailingSlashOnFileIs404) {
  EXPECT_EQ(resolve("/a/b.txt/").status, 404);
  EXPECT_EQ(resolve("/a/b.txt/.").status, 404);
}

TEST_F(StaticPathTest, PercentEncodedNamesAndBackslash) {
  EXPECT_EQ(resolve("/sp%20ace.txt").path, root_ + "/sp ace.txt");
  // Backslash is an ordinary file-name character on Linux.
  EXPECT_EQ(resolve("/back\\slash.txt").path, root_ + "/back\\slash.txt");
  EXPECT_EQ(resolve("/back%5Cslash.txt").status, 200);
  EXPECT_EQ(resolve("/a\\b.txt").status, 404);
  EXPECT_EQ(resolve("/..\\secret").status, 404);
}

TEST_F(StaticPathTest, NulAndMalformedEscapesAre400) {
  EXPECT_EQ(resolve("/%00").status, 400);
  EXPECT_EQ(resolve("/a/b.txt%00.html").status, 400);
  EXPECT_EQ(resolve(std::string_view("/a/b.txt\0x", 10)).status, 400);
  EXPECT_EQ(resolve("/%G1").status, 400);
  EXPECT_EQ(resolve("/%4").status, 400);
  EXPECT_EQ(resolve("/%").status, 400);
  EXPECT_EQ(resolve("/a%2").status, 400);
}

TEST_F(StaticPathTest, MissingIs404) {
  EXPECT_EQ(resolve("/missing").status, 404);
  EXPECT_EQ(resolve("/missing/deeper").status, 404);
  EXPECT_EQ(resolve("/a/b.txt/deeper").status, 404);  // ENOTDIR
}

TEST_F(StaticPathTest, EscapingSymlinksAre403) {
  EXPECT_EQ(resolve("/escape").status, 403);
  EXPECT_EQ(resolve("/escape_rel").status, 403);
  EXPECT_EQ(resolve("/escape_dir/secret").status, 403);
  EXPECT_EQ(resolve("/escape_dir/").status, 403);
  EXPECT_EQ(resolve("/escape_dir/outdir_index/").status, 403);
  EXPECT_EQ(resolve("/evilidx/").status, 403);  // index.html links outside
}

TEST_F(StaticPathTest, InnerSymlinksResolve) {
  const ResolvedPath r = resolve("/inner");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.path, root_ + "/a/b.txt");
  EXPECT_EQ(resolve("/innerdir/").path, root_ + "/dir/index.html");
}

TEST_F(StaticPathTest, QueryAndFragmentIgnored) {
  EXPECT_EQ(resolve("/a/b.txt?x=../..").path, root_ + "/a/b.txt");
  EXPECT_EQ(resolve("/a/b.txt#../../secret").path, root_ + "/a/b.txt");
  EXPECT_EQ(resolve("/?%00").status, 200);
  // An encoded '?' is part of the name, not a query.
  EXPECT_EQ(resolve("/a/b.txt%3Fx").status, 404);
}

TEST_F(StaticPathTest, TargetMustStartWithSlash) {
  EXPECT_EQ(resolve("relative").status, 400);
  EXPECT_EQ(resolve("").status, 400);
  EXPECT_EQ(resolve("*").status, 400);
  EXPECT_EQ(resolve("http://host/a/b.txt").status, 400);
  EXPECT_EQ(resolve("%2fa/b.txt").status, 400);
}

TEST_F(StaticPathTest, NonRegularFilesAre403) {
  EXPECT_EQ(resolve("/fifo").status, 403);
  EXPECT_EQ(resolve("/idxdir/").status, 403);
}

TEST_F(StaticPathTest, RootVariants) {
  // "/" as the root contains everything, and a trailing slash on root is tolerated.
  EXPECT_EQ(resolve_static_path("/", root_ + "/a/b.txt").path, root_ + "/a/b.txt");
  EXPECT_EQ(resolve_static_path(root_ + "/", "/a/b.txt").path, root_ + "/a/b.txt");
  // A sibling sharing the root's prefix ("root" vs "root2") is not inside it.
  write(base_ + "/root2/f.txt", "sibling");
  fs::create_symlink(base_ + "/root2/f.txt", root_ + "/sibling");
  EXPECT_EQ(resolve("/sibling").status, 403);
  // A relative root would mean "relative to the worker's cwd": refused.
  EXPECT_EQ(resolve_static_path("", "/a/b.txt").status, 403);
  EXPECT_EQ(resolve_static_path("root", "/a/b.txt").status, 403);
}

TEST_F(StaticPathTest, UnreadableDirectoryIs403) {
  // root ignores permissions, so check from a child that has dropped to nobody.
  ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
  fs::permissions(root_ + "/locked", fs::perms::none);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(99);
    const int status = resolve("/locked/x.txt").status;
    ::_exit(status == 403 ? 0 : status % 100 + 1);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  fs::permissions(root_ + "/locked", fs::perms::owner_all);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
}

TEST(PercentDecodeTest, Decodes) {
  std::string out = "stale";
  ASSERT_TRUE(percent_decode("a%20b%2Fc%2fd", &out));
  EXPECT_EQ(out, "a b/c/d");
  ASSERT_TRUE(percent_decode("%4a%4A+", &out));
  EXPECT_EQ(out, "JJ+");  // '+' is form encoding, not URI encoding
  ASSERT_TRUE(percent_decode("", &out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(percent_decode("%00", &out));
  EXPECT_EQ(out, std::string(1, '\0'));
  ASSERT_TRUE(percent_decode("%ff", &out));
  EXPECT_EQ(out, "\xff");
  ASSERT_TRUE(percent_decode("%2525", &out));
  EXPECT_EQ(out, "%25");
}

TEST(PercentDecodeTest, RejectsMalformed) {
  std::string out;
  EXPECT_FALSE(percent_decode("%G1", &out));
  EXPECT_FALSE(percent_decode("%1G", &out));
  EXPECT_FALSE(percent_decode("%4", &out));
  EXPECT_FALSE(percent_decode("%", &out));
  EXPECT_FALSE(percent_decode("abc%", &out));
  EXPECT_FALSE(percent_decode("%%41", &out));
  EXPECT_FALSE(percent_decode("% 1", &out));
}

}  // namespace
}  // namespace preforkd
