// The control socket's wire protocol, version 1, shared by the master
// (master/control_commands.cpp) and `preforkd` as a client (cli/control_client.cpp).
//
// A Unix stream socket. The client sends one request line; the master answers
// with one or more reply lines and then closes. Every line is one JSON object and
// ends with "\n". A request is at most kMaxRequestBytes; replies may be longer
// (status). Fields a side does not know are ignored, so later versions can add
// some; a request for a version the master does not speak gets an error.
//
//   request   {"version":1,"command":"status"}
//             {"version":1,"command":"reload"}     reload and wait for the outcome (HUP)
//             {"version":1,"command":"upgrade"}    binary upgrade and wait for the outcome (USR2)
//   replies   {"version":1,"event":"status","status":{...}}        the /status document
//             {"version":1,"event":"accepted","attempt":N,"queued":B}
//             {"version":1,"event":"started","new_master":PID}   upgrade: the new master runs
//             {"version":1,"event":"finished","ok":true,"generation":G}          reload
//             {"version":1,"event":"finished","ok":true,"new_master":PID,
//                "old_master":PID,"handover":"auto"|"manual"}                  upgrade
//             {"version":1,"event":"finished","ok":false,"error":"..."}
//             {"version":1,"event":"error","error":"..."}   the request cannot be taken
//
// "attempt" numbers a reload (or upgrade) request; requests that coalesce (made
// while a reload is in progress) share the queued attempt and its outcome.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace preforkd::control {

inline constexpr int kVersion = 1;
inline constexpr std::size_t kMaxRequestBytes = 4096;

enum class Command { status, reload, upgrade };
std::string_view command_name(Command command);

// The request line (with its "\n").
std::string request_line(Command command);

// One reply line: `reply` (a JSON object with "event") with "version" added,
// and "\n". Bytes that are not UTF-8 (a client's garbage quoted back in an
// error) are replaced, never thrown on.
std::string reply_line(nlohmann::json reply);
// {"version":1,"event":"error","error":MESSAGE}
std::string error_reply(const std::string& message);

// Parses one request line (without "\n"): the command, or nullopt with *error
// saying what is wrong, worded for the client.
std::optional<Command> parse_request(std::string_view line, std::string* error);

}  // namespace preforkd::control
