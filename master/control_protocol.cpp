// Control protocol requests: encoding for the client, defensive decoding for the master.
#include "master/control_protocol.hpp"

namespace preforkd::control {

std::string_view command_name(Command command) {
  switch (command) {
    case Command::status: return "status";
    case Command::reload: return "reload";
    case Command::upgrade: return "upgrade";
  }
  return "?";
}

std::string request_line(Command command) {
  nlohmann::json request = {{"version", kVersion}, {"command", std::string(command_name(command))}};
  return request.dump() + "\n";
}

std::string reply_line(nlohmann::json reply) {
  reply["version"] = kVersion;
  return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string error_reply(const std::string& message) {
  return reply_line({{"event", "error"}, {"error", message}});
}

std::optional<Command> parse_request(std::string_view line, std::string* error) {
  if (line.size() > kMaxRequestBytes) {
    *error = "request longer than " + std::to_string(kMaxRequestBytes) + " bytes";
    return std::nullopt;
  }
  auto request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) {
    *error = "not a JSON object";
    return std::nullopt;
  }
  auto version = request.find("version");
  if (version == request.end() || !version->is_number_integer()) {
    *error = "no \"version\"";
    return std::nullopt;
  }
  if (version->get<long long>() != kVersion) {
    *error = "unsupported version " + version->dump() + " (this master speaks " + std::to_string(kVersion) + ")";
    return std::nullopt;
  }
  auto command = request.find("command");
  if (command == request.end() || !command->is_string()) {
    *error = "no \"command\"";
    return std::nullopt;
  }
  const std::string& name = command->get_ref<const std::string&>();
  for (Command c : {Command::status, Command::reload, Command::upgrade})
    if (name == command_name(c)) return c;
  *error = "unknown command \"" + name + "\" (status, reload, upgrade)";
  return std::nullopt;
}

}  // namespace preforkd::control
