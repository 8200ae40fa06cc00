// getpwnam_r / getgrnam_r with buffers that grow on ERANGE (big NSS groups).
#include "common/user_lookup.hpp"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace preforkd {
namespace {

constexpr std::size_t kMaxBuffer = 1 << 20;

// lookup(buffer, *result) returns the getXXnam_r error code.
template <typename Entry, typename Lookup>
bool find_entry(Lookup lookup, Entry* entry, std::string* error, const std::string& what) {
  std::vector<char> buffer(4096);
  for (;;) {
    Entry* result = nullptr;
    int rc = lookup(buffer, entry, &result);
    if (rc == ERANGE && buffer.size() < kMaxBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0) {
      *error = "looking up " + what + ": " + std::strerror(rc);
      return false;
    }
    if (result == nullptr) {
      *error = "unknown " + what;
      return false;
    }
    return true;
  }
}

}  // namespace

std::optional<Account> lookup_user(const std::string& name, std::string* error) {
  passwd entry{};
  bool found = find_entry<passwd>(
      [&](std::vector<char>& buf, passwd* e, passwd** r) { return getpwnam_r(name.c_str(), e, buf.data(), buf.size(), r); },
      &entry, error, "user \"" + name + "\"");
  if (!found) return std::nullopt;
  return Account{static_cast<unsigned>(entry.pw_uid), static_cast<unsigned>(entry.pw_gid)};
}

std::optional<unsigned> lookup_group(const std::string& name, std::string* error) {
  group entry{};
  bool found = find_entry<group>(
      [&](std::vector<char>& buf, group* e, group** r) { return getgrnam_r(name.c_str(), e, buf.data(), buf.size(), r); },
      &entry, error, "group \"" + name + "\"");
  if (!found) return std::nullopt;
  return static_cast<unsigned>(entry.gr_gid);
}

}  // namespace preforkd
