// Decoding sd_notify datagrams.
#include "master/notify_message.hpp"

#include <charconv>

namespace preforkd {

NotifyMessage parse_notify_message(std::string_view datagram) {
  NotifyMessage out;
  if (datagram.find('\0') != std::string_view::npos) return out;
  while (!datagram.empty()) {
    std::size_t end = datagram.find('\n');
    std::string_view line = datagram.substr(0, end);
    datagram.remove_prefix(end == std::string_view::npos ? datagram.size() : end + 1);
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = line.substr(0, eq);
    std::string_view value = line.substr(eq + 1);
    if (name == "READY") {
      out.ready = out.ready || value == "1";
    } else if (name == "STOPPING") {
      out.stopping = out.stopping || value == "1";
    } else if (name == "WATCHDOG") {
      out.watchdog = out.watchdog || value == "1";
    } else if (name == "EXTEND_TIMEOUT_USEC") {
      std::uint64_t usec = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), usec);
      if (value.empty() || ptr != value.data() + value.size()) continue;
      if (ec == std::errc::result_out_of_range || usec > kMaxExtendUsec) usec = kMaxExtendUsec;
      else if (ec != std::errc{}) continue;
      out.extend_timeout_usec = usec;
    } else if (name == "STATUS") {
      std::string text(value.substr(0, kMaxNotifyStatus));
      for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
      out.status = std::move(text);
    }
  }
  return out;
}

}  // namespace preforkd
