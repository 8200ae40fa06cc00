// mime_type_for: the table, case folding, and which part of a path counts as the extension.
#include "worker/mime_types.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace preforkd {
namespace {

constexpr std::string_view kOctet = "application/octet-stream";

TEST(MimeTypesTest, EveryTableEntry) {
  const std::pair<const char*, const char*> cases[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"},
      {"xml", "text/xml; charset=utf-8"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
      {"mp3", "audio/mpeg"},
      {"ogg", "audio/ogg"},
      {"wav", "audio/wav"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"tar", "application/x-tar"},
      {"csv", "text/csv; charset=utf-8"},
      {"md", "text/markdown; charset=utf-8"},
      {"map", "application/json; charset=utf-8"},
      {"avif", "image/avif"},
  };
  for (const auto& [ext, type] : cases) {
    EXPECT_EQ(mime_type_for(std::string("/srv/www/file.") + ext), type) << ext;
  }
}

TEST(MimeTypesTest, CaseInsensitive) {
  EXPECT_EQ(mime_type_for("INDEX.HTML"), "text/html; charset=utf-8");
  EXPECT_EQ(mime_type_for("/x/photo.JpEg"), "image/jpeg");
  EXPECT_EQ(mime_type_for("font.WOFF2"), "font/woff2");
}

TEST(MimeTypesTest, LastDotOfLastSegment) {
  EXPECT_EQ(mime_type_for("/a/archive.tar.gz"), "application/gzip");
  EXPECT_EQ(mime_type_for("/a/page.html.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(mime_type_for("/site.html/README"), kOctet);
  EXPECT_EQ(mime_type_for("/v1.2/data"), kOctet);
  EXPECT_EQ(mime_type_for("/dir.css/"), kOctet);
}

TEST(MimeTypesTest, NoOrUnknownExtension) {
  EXPECT_EQ(mime_type_for(""), kOctet);
  EXPECT_EQ(mime_type_for("/"), kOctet);
  EXPECT_EQ(mime_type_for("/srv/Makefile"), kOctet);
  EXPECT_EQ(mime_type_for("/srv/file."), kOctet);
  EXPECT_EQ(mime_type_for("/srv/file.exe"), kOctet);
  EXPECT_EQ(mime_type_for("/srv/file.htmlx"), kOctet);
  EXPECT_EQ(mime_type_for("/srv/file.htm "), kOctet);
  EXPECT_EQ(mime_type_for("/srv/file.averyveryverylongextension"), kOctet);
  EXPECT_EQ(mime_type_for("/srv/file.woff22"), kOctet);
}

TEST(MimeTypesTest, DotFiles) {
  // A leading dot still marks an extension, as in nginx: ".html" is HTML.
  EXPECT_EQ(mime_type_for("/srv/.html"), "text/html; charset=utf-8");
  EXPECT_EQ(mime_type_for("/srv/.bashrc"), kOctet);
}

}  // namespace
}  // namespace preforkd
