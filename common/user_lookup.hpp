// Names of users and groups to ids, for the `user` and `group` config keys.
#pragma once

#include <optional>
#include <string>

namespace preforkd {

struct Account {
  unsigned uid = 0;
  unsigned gid = 0;  // primary group
};

// nullopt with *error ("unknown user \"x\"" or the lookup's failure) if not found.
std::optional<Account> lookup_user(const std::string& name, std::string* error);
std::optional<unsigned> lookup_group(const std::string& name, std::string* error);

}  // namespace preforkd
