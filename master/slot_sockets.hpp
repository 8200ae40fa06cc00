// The listening sockets of every worker slot, owned by the master across
// generations. Worker k of each generation inherits slot k's sockets, so a reload
// never closes a listener and nothing queued on one is ever reset; a crashed
// worker's queue waits for its replacement. A socket is closed only when no live
// worker and no current generation needs it (its slot or listener went away).
//
// Each listener's sockets form one SO_REUSEPORT group. The kernel indexes a group's
// sockets in the order they joined and, when one leaves, moves the last into its
// place. Slots are created in ascending order and only the highest retire, which
// keeps index == slot, but each group also mirrors the kernel's order, so steering
// stays right if a middle slot is ever closed first. A classic BPF program
// (SO_ATTACH_REUSEPORT_CBPF, unprivileged; see reuseport_program.hpp) steers new
// connections and datagrams to any chosen set of slots: the serving prefix while a
// retiring slot's socket waits to be closed, or every slot but one whose worker is
// hung or not ready yet. Without a program the kernel hashes over all sockets.
//
// A listener removed by a reload keeps its sockets until the last worker using
// them is gone. Meanwhile they refuse new connections but complete handshakes
// already under way (see refuse_new_connections in listen_socket.hpp), so the
// old workers accept everything a client could consider connected.
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
  // none yet. -1 with *error on failure. The master acquires every slot when it
  // prepares a reload, so this is where the reload's listener settings meet the
  // live sockets: a changed backlog is applied (listen(2) again, queue kept), a
  // changed reuseport fails ("changing reuseport needs a restart", see
  // can_reload), a removed listener that came back accepts new connections again.
  int acquire(const ListenerConfig& listener, int worker_slot, std::string* error);

  // Binary upgrade: the sockets as "FD:SLOT:d|s:ADDRESS;..." for the new master's
  // environment, and the fds to pass it, in the order the text numbers them from
  // first_fd. adopt() takes such a text in the new master.
  std::string describe_for_upgrade(int first_fd, std::vector<int>* fds) const;
  bool adopt(const std::string& description, std::string* error);

  // Closes every socket whose (listener, slot) is not in `needed`.
  void retain_only(const std::set<std::pair<ListenerKey, int>>& needed);

  // New connections and datagrams of listener's group go only to the sockets of
  // `worker_slots` (mapped through socket_slot; slots without a socket are
  // ignored), each picked at random. When that covers every socket the program is
  // detached and the kernel's hash spreads again. When it covers none (an empty
  // set) nothing is programmed: the group keeps its current steering, a warning
  // says so, and false is returned; likewise if the program cannot be attached.
  // Re-applied by itself when the group's membership changes (retain_only).
  bool steer(const ListenerConfig& listener, const std::vector<int>& worker_slots);
  // A binary upgrade's two masters hold the same groups: while `shared`, steer()
  // always attaches a program naming its slots, never detaches (the group may
  // have members this master does not know of, which the kernel's hash would
  // feed). Turning it on also forgets what this master believes the kernel holds
  // (programs, refusing filters): the other master may change them, so the next
  // steer() and acquire() set them again whatever they were.
  void set_shared(bool shared);
  // worker_cpu_affinity: slot i's worker is pinned to cpu_for_slot(cpus, i)
  // (worker_affinity.hpp; empty: none is). Every group of more than one socket
  // then gets a program that prefers the sockets pinned to the CPU a connection
  // arrives on, among the slots steered to (reuseport_cpu_steering_program): also
  // when that is every slot, so it is never detached meanwhile. Re-programs every
  // group at once.
  void set_slot_cpus(std::vector<int> cpus);
  // Every socket, as (listener, socket slot): what a new master adopted.
  std::set<std::pair<ListenerKey, int>> sockets() const;
  // The prefix case: slots 0..serving-1 of each listener.
  void steer(const std::vector<ListenerConfig>& listeners, int serving);
  // The socket slots steering currently picks from; empty when no program is
  // attached (hash over the whole group) or the listener has no sockets.
  std::vector<int> steered_slots(const ListenerKey& key) const;

  // Reload validation: false with *why ("changing reuseport needs a restart")
  // when listener's sockets exist but were opened with the other reuseport
  // setting. Live sockets cannot change it: a group cannot be joined or left,
  // and swapping sockets would reset their queues.
  bool can_reload(const ListenerConfig& listener, std::string* why) const;

  // Reload: every group whose listener is not in `serving` refuses new
  // connections from now on and completes the handshakes under way; a group that
  // is in it (it came back before its sockets closed) accepts them again.
  void refuse_removed(const std::vector<ListenerConfig>& serving);

  // Connections (or for datagram sockets: whether datagrams) wait on slot's
  // socket of listener that closing it would throw away; 0 without a socket.
  int queued_connections(const ListenerConfig& listener, int worker_slot) const;

  std::size_t socket_count() const;

 private:
  struct Group {
    std::map<int, int> fd_by_slot;
    std::vector<int> kernel_order;   // slots, in the kernel's index order
    std::vector<int> steered_slots;  // what the attached program picks from; empty: none attached
    std::vector<int> steered_indices;
    bool steered_by_cpu = false;  // the attached program is the CPU-preferring one
    // unknown: adopted from a previous master, which may have attached either.
    enum class Filter { none, refusing, unknown } filter = Filter::none;
  };
  bool program(const ListenerKey& key, Group& group, std::vector<int> slots);
  static bool apply_backlog(const ListenerKey& key, int slot, int fd, int backlog, std::string* error);
  void allow(const ListenerKey& key, Group& group);
  bool by_cpu(const Group& group) const { return !slot_cpus_.empty() && group.fd_by_slot.size() > 1; }
  std::map<ListenerKey, Group> groups_;
  std::vector<int> slot_cpus_;
  bool shared_ = false;
};

}  // namespace preforkd
