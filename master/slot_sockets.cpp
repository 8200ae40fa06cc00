// Slot sockets and reuseport steering; see slot_sockets.hpp for why.
#include "master/slot_sockets.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "common/log.hpp"
#include "master/reuseport_program.hpp"
#include "master/worker_affinity.hpp"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68  // Linux 5.8
#endif

namespace preforkd {
namespace {

// cpu_of: each index's CPU (reuseport_cpu_steering_program); empty: by chance only.
bool attach_steering(int fd, const std::vector<int>& indices, const std::vector<int>& cpu_of = {}) {
  std::vector<sock_filter> code =
      cpu_of.empty() ? reuseport_steering_program(indices) : reuseport_cpu_steering_program(indices, cpu_of);
  if (code.empty()) {
    errno = E2BIG;
    return false;
  }
  sock_fprog program{static_cast<unsigned short>(code.size()), code.data()};
  return ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0;
}

std::string slot_list(const std::vector<int>& slots) {
  std::string text = "{";
  for (int slot : slots) text += (text.size() > 1 ? "," : "") + std::to_string(slot);
  return text + "}";
}

}  // namespace

ListenerKey key_of(const ListenerConfig& listener) {
  return {listener.address.to_string(), is_datagram(listener.protocol) ? Transport::datagram : Transport::stream};
}

SlotSockets::~SlotSockets() { retain_only({}); }

int socket_slot(const ListenerConfig& listener, int slot) { return listener.reuseport ? slot : 0; }

int SlotSockets::acquire(const ListenerConfig& listener, int worker_slot, std::string* error) {
  ListenerKey key = key_of(listener);
  Group& group = groups_[key];
  if (!can_reload(listener, error)) return -1;
  if (group.filter != Group::Filter::none) allow(key, group);
  int slot = socket_slot(listener, worker_slot);
  if (auto it = group.fd_by_slot.find(slot); it != group.fd_by_slot.end())
    return apply_backlog(key, slot, it->second, listener.backlog, error) ? it->second : -1;
  // A socket joining a group that spreads by hash would take its share of new
  // connections the moment it listens, before any worker polls it (and a reload
  // abandoned meanwhile would close it, resetting them): steer the group to its
  // present members first, so the newcomer receives only once steering names it.
  if (!group.fd_by_slot.empty() && group.steered_indices.empty()) {
    std::vector<int> present(group.kernel_order.size());
    std::iota(present.begin(), present.end(), 0);
    if (attach_steering(group.fd_by_slot.begin()->second, present)) {
      group.steered_indices = present;
      group.steered_by_cpu = false;
      group.steered_slots.clear();
      for (const auto& [present_slot, present_fd] : group.fd_by_slot) group.steered_slots.push_back(present_slot);
    }
  }
  int fd = open_listen_socket(listener.address, key.transport, listener.backlog, listener.reuseport, error);
  if (fd >= 0) {
    group.fd_by_slot[slot] = fd;
    group.kernel_order.push_back(slot);  // a new socket joins its group last
  } else if (group.fd_by_slot.empty()) {
    groups_.erase(key);
  }
  return fd;
}

void SlotSockets::retain_only(const std::set<std::pair<ListenerKey, int>>& needed) {
  for (auto it = groups_.begin(); it != groups_.end();) {
    const ListenerKey& key = it->first;
    Group& group = it->second;
    auto& fds = group.fd_by_slot;
    bool changed = false;
    // The last close of a listener takes it out of its reuseport group before it
    // leaves the listening hash: a SYN handled meanwhile on the other CPU can
    // still find it there, past the group's steering, and the handshake it starts
    // is reset when its ACK finds the listener closed. With SYNs refused first,
    // that SYN is dropped, and its retry lands on a socket that stays. Only when
    // this close is the last: the slot's workers are gone (the supervisor keeps a
    // live worker's sockets), no other master holds the group (shared: it may be
    // the other's to serve), and the group stays (closing whole is a stop, or a
    // removed listener, which refuse_removed already handles).
    const bool refuse_first = !shared_ && key.transport == Transport::stream &&
                              std::any_of(fds.begin(), fds.end(), [&](const auto& s) { return needed.count({key, s.first}) > 0; });
    // Highest slot first: the kernel refills a freed index with the group's last socket.
    for (auto slot = fds.rbegin(); slot != fds.rend();) {
      if (needed.count({key, slot->first})) {
        ++slot;
        continue;
      }
      std::string error;
      if (refuse_first && !refuse_new_connections(slot->second, key.transport, &error))
        PF_LOG_WARN("%s slot %d: %s", key.address.c_str(), slot->first, error.c_str());
      ::close(slot->second);
      auto& order = group.kernel_order;
      if (auto at = std::find(order.begin(), order.end(), slot->first); at != order.end()) {
        *at = order.back();
        order.pop_back();
      }
      changed = true;
      slot = std::make_reverse_iterator(fds.erase(std::next(slot).base()));
    }
    if (fds.empty()) {
      it = groups_.erase(it);
      continue;
    }
    // The program returns kernel indices, which may have moved.
    if (changed && !group.steered_slots.empty()) program(key, group, group.steered_slots);
    ++it;
  }
}

bool SlotSockets::program(const ListenerKey& key, Group& group, std::vector<int> slots) {
  std::sort(slots.begin(), slots.end());
  slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
  std::erase_if(slots, [&](int slot) { return !group.fd_by_slot.count(slot); });
  if (slots.empty()) {
    PF_LOG_WARN("%s: no socket to steer to; new traffic keeps its current steering", key.address.c_str());
    return false;
  }
  std::vector<int> indices;
  for (int slot : slots)
    indices.push_back(static_cast<int>(std::find(group.kernel_order.begin(), group.kernel_order.end(), slot) -
                                       group.kernel_order.begin()));
  std::sort(indices.begin(), indices.end());
  const bool cpus = by_cpu(group);
  bool all = !shared_ && !cpus && slots.size() == group.fd_by_slot.size();
  // (All of them with a program attached, as after a shared spell, goes on to detach.)
  if ((!all && indices == group.steered_indices && cpus == group.steered_by_cpu) ||
      (all && group.steered_indices.empty())) {
    group.steered_slots = slots;
    return true;
  }
  int any_fd = group.fd_by_slot.begin()->second;
  if (all) {
    int unused = 0;
    if (::setsockopt(any_fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused, sizeof unused) == 0 || errno == ENOENT) {
      group.steered_slots.clear();
      group.steered_indices.clear();
      return true;
    }
    // No detach before Linux 5.8: a program over the whole group does the same
    // job (random instead of hash spreading), below.
  }
  std::vector<int> cpu_of;
  if (cpus) {
    for (int index : indices) {
      cpu_of.push_back(cpu_for_slot(slot_cpus_, group.kernel_order[static_cast<std::size_t>(index)]));
    }
  }
  if (!attach_steering(any_fd, indices, cpu_of)) {
    PF_LOG_WARN("setsockopt(SO_ATTACH_REUSEPORT_CBPF) on %s, slots %s of %zu: %s; new traffic keeps its current "
                "steering",
                key.address.c_str(), slot_list(slots).c_str(), group.fd_by_slot.size(), std::strerror(errno));
    return false;
  }
  group.steered_slots = slots;
  group.steered_indices = indices;
  group.steered_by_cpu = cpus;
  PF_LOG_INFO("%s: steering new traffic to slots %s of %zu%s", key.address.c_str(), slot_list(slots).c_str(),
              group.fd_by_slot.size(), cpus ? ", each to a slot on its CPU" : "");
  return true;
}

bool SlotSockets::steer(const ListenerConfig& listener, const std::vector<int>& worker_slots) {
  ListenerKey key = key_of(listener);
  auto it = groups_.find(key);
  if (it == groups_.end()) return false;
  std::vector<int> slots;
  for (int slot : worker_slots) slots.push_back(socket_slot(listener, slot));
  return program(key, it->second, std::move(slots));
}

void SlotSockets::steer(const std::vector<ListenerConfig>& listeners, int serving) {
  std::vector<int> prefix(static_cast<std::size_t>(std::max(serving, 0)));
  std::iota(prefix.begin(), prefix.end(), 0);
  for (const auto& listener : listeners) steer(listener, prefix);
}

void SlotSockets::set_slot_cpus(std::vector<int> cpus) {
  if (cpus == slot_cpus_) return;
  slot_cpus_ = std::move(cpus);
  for (auto& [key, group] : groups_) {
    // No steering means every slot.
    std::vector<int> slots = group.steered_slots;
    if (slots.empty())
      for (const auto& [slot, fd] : group.fd_by_slot) slots.push_back(slot);
    group.steered_indices = {-1};  // what is attached was built for the old CPUs
    program(key, group, std::move(slots));
  }
}

void SlotSockets::set_shared(bool shared) {
  if (shared && !shared_) {
    for (auto& [key, group] : groups_) {
      group.steered_indices = {-1};
      group.filter = Group::Filter::unknown;
    }
  }
  shared_ = shared;
}

std::set<std::pair<ListenerKey, int>> SlotSockets::sockets() const {
  std::set<std::pair<ListenerKey, int>> all;
  for (const auto& [key, group] : groups_)
    for (const auto& [slot, fd] : group.fd_by_slot) all.insert({key, slot});
  return all;
}

std::vector<int> SlotSockets::steered_slots(const ListenerKey& key) const {
  auto it = groups_.find(key);
  return it == groups_.end() ? std::vector<int>{} : it->second.steered_slots;
}

bool SlotSockets::apply_backlog(const ListenerKey& key, int slot, int fd, int backlog, std::string* error) {
  if (key.transport != Transport::stream) return true;
  int before = listen_backlog(fd);
  if (before == backlog) return true;
  if (!set_listen_backlog(fd, backlog, error)) {
    *error = "slot " + std::to_string(slot) + ": " + *error;
    return false;
  }
  // Capped at net.core.somaxconn: then it differs again on every reload, harmlessly.
  PF_LOG_INFO("%s slot %d: backlog %d -> %d", key.address.c_str(), slot, before, listen_backlog(fd));
  return true;
}

bool SlotSockets::can_reload(const ListenerConfig& listener, std::string* why) const {
  auto it = groups_.find(key_of(listener));
  if (it == groups_.end() || it->second.fd_by_slot.empty()) return true;
  int reuseport = 0;
  socklen_t len = sizeof reuseport;
  if (::getsockopt(it->second.fd_by_slot.begin()->second, SOL_SOCKET, SO_REUSEPORT, &reuseport, &len) != 0)
    return true;  // unreadable: acquire will report what is wrong
  if ((reuseport != 0) == listener.reuseport) return true;
  *why = "changing reuseport needs a restart";
  return false;
}

void SlotSockets::allow(const ListenerKey& key, Group& group) {
  for (const auto& [slot, fd] : group.fd_by_slot) {
    std::string error;
    if (!allow_new_connections(fd, &error)) PF_LOG_WARN("%s slot %d: %s", key.address.c_str(), slot, error.c_str());
  }
  if (group.filter == Group::Filter::refusing)
    PF_LOG_NOTICE("%s: configured again; accepting new connections", key.address.c_str());
  group.filter = Group::Filter::none;
}

void SlotSockets::refuse_removed(const std::vector<ListenerConfig>& serving) {
  std::set<ListenerKey> kept;
  for (const auto& listener : serving) kept.insert(key_of(listener));
  for (auto& [key, group] : groups_) {
    if (kept.count(key)) {
      if (group.filter != Group::Filter::none) allow(key, group);
      continue;
    }
    if (group.filter == Group::Filter::refusing) continue;
    for (const auto& [slot, fd] : group.fd_by_slot) {
      std::string error;
      if (!refuse_new_connections(fd, key.transport, &error))
        PF_LOG_WARN("%s slot %d: %s", key.address.c_str(), slot, error.c_str());
    }
    group.filter = Group::Filter::refusing;
    PF_LOG_NOTICE("%s: removed; refusing new connections while its workers finish the queued ones",
                  key.address.c_str());
  }
}

int SlotSockets::queued_connections(const ListenerConfig& listener, int worker_slot) const {
  ListenerKey key = key_of(listener);
  auto it = groups_.find(key);
  if (it == groups_.end()) return 0;
  auto fd = it->second.fd_by_slot.find(socket_slot(listener, worker_slot));
  return fd == it->second.fd_by_slot.end() ? 0 : preforkd::queued_connections(fd->second, key.transport);
}

std::string SlotSockets::describe_for_upgrade(int first_fd, std::vector<int>* fds) const {
  std::string text;
  for (const auto& [key, group] : groups_) {
    // In the kernel's order, which adopt() rebuilds from the order of the items.
    for (int slot : group.kernel_order) {
      text += std::to_string(first_fd + static_cast<int>(fds->size())) + ":" + std::to_string(slot) + ":" +
              (key.transport == Transport::datagram ? "d" : "s") + ":" + key.address + ";";
      fds->push_back(group.fd_by_slot.at(slot));
    }
  }
  return text;
}

bool SlotSockets::adopt(const std::string& description, std::string* error) {
  std::size_t pos = 0;
  while (pos < description.size()) {
    std::size_t end = description.find(';', pos);
    if (end == std::string::npos) end = description.size();
    std::string item = description.substr(pos, end - pos);
    pos = end + 1;
    int fd = -1, slot = -1, used = 0;
    char transport = 0;
    if (std::sscanf(item.c_str(), "%d:%d:%c:%n", &fd, &slot, &transport, &used) != 3 || fd < 3 || slot < 0 ||
        (transport != 's' && transport != 'd')) {
      *error = "bad inherited socket \"" + item + "\"";
      return false;
    }
    // Ours now; our own workers get it explicitly, nothing else may inherit it.
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ListenerKey key{item.substr(static_cast<std::size_t>(used)), transport == 'd' ? Transport::datagram : Transport::stream};
    Group& group = groups_[key];
    if (group.fd_by_slot.emplace(slot, fd).second) group.kernel_order.push_back(slot);
    // The previous master may have left a steering program or a filter on the
    // group: unknown, so the first steer() or acquire() replaces or clears it.
    group.steered_indices = {-1};
    group.filter = Group::Filter::unknown;
  }
  return true;
}

std::size_t SlotSockets::socket_count() const {
  std::size_t n = 0;
  for (const auto& [key, group] : groups_) n += group.fd_by_slot.size();
  return n;
}

}  // namespace preforkd
