// One sd_notify(3) datagram from an exec-mode worker, decoded: newline-separated
// VARIABLE=VALUE assignments. Only what preforkd acts on is kept (READY=1,
// STOPPING=1, WATCHDOG=1, EXTEND_TIMEOUT_USEC=, STATUS=); anything else (MAINPID=,
// ERRNO=, RELOADING=1, FDSTORE=1, ...) is ignored, as systemd ignores what it does
// not know. Decoding is defensive: the sender is the operator's program, and the
// datagram is bounded before it gets here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace preforkd {

// STATUS= text is kept for `preforkd status` and /status; longer is cut.
inline constexpr std::size_t kMaxNotifyStatus = 256;
// EXTEND_TIMEOUT_USEC= beyond an hour is taken as an hour (the longest timeout the
// config allows), so a deadline can never overflow.
inline constexpr std::uint64_t kMaxExtendUsec = 3600ull * 1'000'000;

struct NotifyMessage {
  bool ready = false;
  bool stopping = false;
  bool watchdog = false;
  std::optional<std::uint64_t> extend_timeout_usec;
  std::optional<std::string> status;  // printable: control characters become ' '
  bool operator==(const NotifyMessage&) const = default;
};

// Decodes one datagram. A datagram with a NUL byte is ignored whole (as systemd
// does); a malformed value of a known variable (READY=2, EXTEND_TIMEOUT_USEC=x)
// is skipped.
NotifyMessage parse_notify_message(std::string_view datagram);

}  // namespace preforkd
