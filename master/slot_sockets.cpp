// Slot sockets and reuseport steering; see slot_sockets.hpp for why.
#include "master/slot_sockets.hpp"

#include <linux/filter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.hpp"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68  // Linux 5.8
#endif

namespace preforkd {
namespace {

// A = random; A %= serving; return A: the index of the socket in the group.
bool attach_steering(int fd, int serving) {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<__u32>(SKF_AD_OFF + SKF_AD_RANDOM)),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, static_cast<__u32>(serving)),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  return ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0;
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
  int slot = socket_slot(listener, worker_slot);
  if (auto it = group.fd_by_slot.find(slot); it != group.fd_by_slot.end()) return it->second;
  int fd = open_listen_socket(listener.address, key.transport, listener.backlog, listener.reuseport, error);
  if (fd >= 0) group.fd_by_slot[slot] = fd;
  return fd;
}

void SlotSockets::retain_only(const std::set<std::pair<ListenerKey, int>>& needed) {
  for (auto group = groups_.begin(); group != groups_.end();) {
    auto& fds = group->second.fd_by_slot;
    // Highest slot first: the kernel refills a freed index with the group's last socket.
    for (auto it = fds.rbegin(); it != fds.rend();) {
      if (needed.count({group->first, it->first})) {
        ++it;
        continue;
      }
      ::close(it->second);
      it = std::make_reverse_iterator(fds.erase(std::next(it).base()));
    }
    group = fds.empty() ? groups_.erase(group) : std::next(group);
  }
}

void SlotSockets::steer(const std::vector<ListenerConfig>& listeners, int serving) {
  for (const auto& listener : listeners) {
    auto it = groups_.find(key_of(listener));
    if (it == groups_.end() || it->second.fd_by_slot.empty()) continue;
    Group& group = it->second;
    int any_fd = group.fd_by_slot.begin()->second;
    bool larger = static_cast<int>(group.fd_by_slot.size()) > serving;
    if (larger && group.steered_to != serving) {
      if (attach_steering(any_fd, serving)) {
        group.steered_to = serving;
        PF_LOG_INFO("%s: steering new traffic to slots 0..%d of %zu", it->first.address.c_str(), serving - 1,
                    group.fd_by_slot.size());
      } else {
        PF_LOG_WARN("setsockopt(SO_ATTACH_REUSEPORT_CBPF) on %s: %s", it->first.address.c_str(), std::strerror(errno));
      }
    } else if (!larger && group.steered_to != 0 && group.steered_to != static_cast<int>(group.fd_by_slot.size())) {
      int unused = 0;
      if (::setsockopt(any_fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused, sizeof unused) == 0 || errno == ENOENT) {
        group.steered_to = 0;
      } else if (int size = static_cast<int>(group.fd_by_slot.size()); attach_steering(any_fd, size)) {
        // No detach before Linux 5.8: a program over the whole group does the same
        // job (random instead of hash spreading), and the slots that came back get
        // their share instead of nothing.
        group.steered_to = size;
      } else {
        PF_LOG_WARN("setsockopt(SO_DETACH_REUSEPORT_BPF) on %s: %s", it->first.address.c_str(), std::strerror(errno));
      }
    }
  }
}

std::string SlotSockets::describe_for_upgrade(int first_fd, std::vector<int>* fds) const {
  std::string text;
  for (const auto& [key, group] : groups_) {
    for (const auto& [slot, fd] : group.fd_by_slot) {
      text += std::to_string(first_fd + static_cast<int>(fds->size())) + ":" + std::to_string(slot) + ":" +
              (key.transport == Transport::datagram ? "d" : "s") + ":" + key.address + ";";
      fds->push_back(fd);
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
    groups_[key].fd_by_slot[slot] = fd;
  }
  return true;
}

std::size_t SlotSockets::socket_count() const {
  std::size_t n = 0;
  for (const auto& [key, group] : groups_) n += group.fd_by_slot.size();
  return n;
}

}  // namespace preforkd
