// Builds the reuseport steering program; see reuseport_program.hpp.
#include "master/reuseport_program.hpp"

#include <cstdint>
#include <map>

namespace preforkd {
namespace {

sock_filter stmt(std::uint16_t code, std::uint32_t k) { return BPF_STMT(code, k); }
sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return BPF_JUMP(code, k, jt, jf);
}

}  // namespace

std::vector<sock_filter> reuseport_steering_program(const std::vector<int>& indices) {
  if (indices.empty()) return {};
  auto n = static_cast<std::uint32_t>(indices.size());
  // Sockets below the highest allowed one that must not be picked. Those above it
  // need no instruction: the result never exceeds the highest allowed index.
  std::vector<std::uint32_t> skipped;
  for (int index = 0, next = 0; index < indices.back(); ++index) {
    if (index == indices[static_cast<std::size_t>(next)]) {
      ++next;
    } else {
      skipped.push_back(static_cast<std::uint32_t>(index));
    }
  }
  // A = random % n: the rank of the chosen socket among the allowed ones.
  std::vector<sock_filter> code = {
      stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM)),
      stmt(BPF_ALU | BPF_MOD | BPF_K, n),
  };
  if (skipped.size() < indices.size()) {
    // Rank to index by stepping over each skipped socket at or below it, in
    // ascending order: "if (A >= s) A += 1". A prefix {0..n-1} needs none.
    for (std::uint32_t s : skipped) {
      code.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, s, 0, 1));
      code.push_back(stmt(BPF_ALU | BPF_ADD | BPF_K, 1));
    }
    code.push_back(stmt(BPF_RET | BPF_A, 0));
  } else {
    // Fewer allowed than skipped: a table, "if (A == rank) return index".
    for (std::uint32_t rank = 0; rank + 1 < n; ++rank) {
      code.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, rank, 0, 1));
      code.push_back(stmt(BPF_RET | BPF_K, static_cast<std::uint32_t>(indices[rank])));
    }
    code.push_back(stmt(BPF_RET | BPF_K, static_cast<std::uint32_t>(indices.back())));
  }
  if (code.size() > BPF_MAXINSNS) return {};
  return code;
}

std::vector<sock_filter> reuseport_cpu_steering_program(const std::vector<int>& indices, const std::vector<int>& cpu_of) {
  std::vector<sock_filter> fallback = reuseport_steering_program(indices);
  if (fallback.empty() || cpu_of.size() != indices.size()) return fallback;
  std::map<int, std::vector<int>> by_cpu;
  for (std::size_t i = 0; i < indices.size(); ++i)
    if (cpu_of[i] >= 0) by_cpu[cpu_of[i]].push_back(indices[i]);
  if (by_cpu.empty()) return fallback;
  // A = the CPU; per CPU with sockets: "if (A != cpu) skip the block", and the
  // block returns one of its sockets; past every block, the plain program.
  std::vector<sock_filter> code = {stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_CPU))};
  for (const auto& [cpu, mine] : by_cpu) {
    // A CPU's block is the plain program over its own sockets (one: return it).
    std::vector<sock_filter> block = mine.size() == 1
                                         ? std::vector<sock_filter>{stmt(BPF_RET | BPF_K, static_cast<std::uint32_t>(mine.front()))}
                                         : reuseport_steering_program(mine);
    if (block.empty() || block.size() > 255) return fallback;
    code.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(cpu), 0,
                        static_cast<std::uint8_t>(block.size())));
    code.insert(code.end(), block.begin(), block.end());
  }
  code.insert(code.end(), fallback.begin(), fallback.end());
  if (code.size() > BPF_MAXINSNS) return fallback;
  return code;
}

}  // namespace preforkd
