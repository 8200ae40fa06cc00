// The listening sockets of every worker slot, owned by the master across
// generations. Worker k of each generation inherits slot k's sockets, so a reload
// never closes a listener and nothing queued on one is ever reset; a crashed
// worker's queue waits for its replacement. A socket is closed only when no live
// worker and no current generation needs it (its slot or listener went away).
//
// Each listener's sockets form one SO_REUSEPORT group. The kernel indexes a group's
// sockets in the order they joined and, when one leaves, moves the last into its
// place; so slots are created in ascending order and only the highest retire, which
// keeps index == slot. While a group has more sockets than serving slots, a classic
// BPF program (SO_ATTACH_REUSEPORT_CBPF, unprivileged) steers new connections and
// datagrams to the first `serving` sockets only, so a retiring slot's socket stops
// receiving before it is closed.
#pragma once

#include <compare>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/listen_socket.hpp"

namespace preforkd {

struct ListenerKey {
  std::string address;  // canonical "IP:port"
  Transport transport = Transport::stream;
  auto operator<=>(const ListenerKey&) const = default;
};

ListenerKey key_of(const ListenerConfig& listener);

// The socket slot a worker slot uses for listener: its own, or slot 0's socket
// shared by all when the listener has reuseport = false.
int socket_slot(const ListenerConfig& listener, int worker_slot);

class SlotSockets {
 public:
  SlotSockets() = default;
  SlotSockets(const SlotSockets&) = delete;
  SlotSockets& operator=(const SlotSockets&) = delete;
  ~SlotSockets();

  // The fd of the socket worker_slot uses for listener, created now if there is
  // none yet. -1 with *error on failure.
  int acquire(const ListenerConfig& listener, int worker_slot, std::string* error);

  // Binary upgrade: the sockets as "FD:SLOT:d|s:ADDRESS;..." for the new master's
  // environment, and the fds to pass it, in the order the text numbers them from
  // first_fd. adopt() takes such a text in the new master.
  std::string describe_for_upgrade(int first_fd, std::vector<int>* fds) const;
  bool adopt(const std::string& description, std::string* error);

  // Closes every socket whose (listener, slot) is not in `needed`.
  void retain_only(const std::set<std::pair<ListenerKey, int>>& needed);

  // For each listener in `listeners`: when its group holds more sockets than
  // `serving`, attach a program that picks one of the first `serving` at random;
  // otherwise detach it and let the kernel's hash choose again.
  void steer(const std::vector<ListenerConfig>& listeners, int serving);

  std::size_t socket_count() const;

 private:
  struct Group {
    std::map<int, int> fd_by_slot;
    int steered_to = 0;  // 0: no program attached
  };
  std::map<ListenerKey, Group> groups_;
};

}  // namespace preforkd
