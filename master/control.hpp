// `preforkd -s ACTION`: signals a running master found through the pid file.
#pragma once

#include <string>

namespace preforkd {

// Exit codes of `preforkd -s`, documented in the README.
enum ControlExit { kControlOk = 0, kControlNoMaster = 1, kControlBadAction = 2 };

// action: stop (TERM), quit (QUIT), reload (HUP), reopen (USR1), upgrade (USR2).
int send_control(const std::string& action, const std::string& pid_file);

}  // namespace preforkd
