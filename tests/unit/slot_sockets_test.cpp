// SlotSockets on real loopback sockets: steering a reuseport group to any set of
// slots (by chance or by CPU), backlog and reuseport changes on reload, removed listeners, queues.
#include "master/slot_sockets.hpp"

#include <gtest/gtest.h>
#include <linux/filter.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "master/reuseport_program.hpp"
#include "master/worker_affinity.hpp"
#include "tests/unit/loopback_sockets.hpp"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

namespace preforkd {
namespace {

using test::connect_to;
using test::take_from_each;

ListenerConfig listener_on(const SocketAddress& address, Transport transport = Transport::stream) {
  ListenerConfig listener;
  listener.name = "test";
  listener.address = address;
  listener.protocol = {transport == Transport::stream ? "http" : "udp-echo", transport};
  return listener;
}

// slots 0..n-1 of listener, opened in order; their fds.
std::vector<int> open_slots(SlotSockets& sockets, const ListenerConfig& listener, int n) {
  std::vector<int> fds;
  for (int slot = 0; slot < n; ++slot) {
    std::string error;
    fds.push_back(sockets.acquire(listener, slot, &error));
    EXPECT_GE(fds.back(), 0) << error;
  }
  return fds;
}

// Sends `count` new connections (or datagrams) to the group in batches and
// returns how many each socket of `fds` received.
std::vector<int> spread(const ListenerConfig& listener, const std::vector<int>& fds, int count) {
  bool datagram = is_datagram(listener.protocol);
  std::vector<int> total(fds.size(), 0);
  constexpr int kBatch = 50;
  for (int sent = 0; sent < count; sent += kBatch) {
    std::vector<int> clients;
    for (int i = 0; i < kBatch; ++i) {
      if (datagram) {
        // A socket per datagram: without a program the kernel hashes the source
        // port, so one client socket would always reach the same slot.
        int client = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        EXPECT_EQ(::sendto(client, "d", 1, 0, listener.address.sa(), listener.address.length), 1);
        ::close(client);
      } else {
        clients.push_back(connect_to(listener.address));
        EXPECT_GE(clients.back(), 0);
      }
    }
    std::vector<int> counts = take_from_each(fds, kBatch, datagram);
    for (std::size_t i = 0; i < fds.size(); ++i) total[i] += counts[i];
    for (int fd : clients) ::close(fd);
  }
  std::string text;
  for (int n : total) text += " " + std::to_string(n);
  std::printf("%s per slot:%s\n", datagram ? "datagrams" : "connections", text.c_str());
  EXPECT_EQ(std::accumulate(total.begin(), total.end(), 0), count) << "something was not received";
  return total;
}

void steer_around_slot_1(Transport protocol) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port(), protocol);
  std::vector<int> fds = open_slots(sockets, listener, 4);

  ASSERT_TRUE(sockets.steer(listener, {0, 2, 3}));
  EXPECT_EQ(sockets.steered_slots(key_of(listener)), (std::vector<int>{0, 2, 3}));
  std::vector<int> steered = spread(listener, fds, 300);
  EXPECT_EQ(steered[1], 0) << "slot 1 received new traffic while steered away from";
  for (int slot : {0, 2, 3}) EXPECT_GT(steered[static_cast<std::size_t>(slot)], 30) << "slot " << slot;

  ASSERT_TRUE(sockets.steer(listener, {0, 1, 2, 3}));  // all of them: the program goes
  EXPECT_TRUE(sockets.steered_slots(key_of(listener)).empty());
  std::vector<int> all = spread(listener, fds, 300);
  EXPECT_GT(all[1], 0) << "slot 1 gets nothing after steering back to all";
}

TEST(SlotSocketsSteering, TcpToAnySetOfSlots) { steer_around_slot_1(Transport::stream); }
TEST(SlotSocketsSteering, UdpToAnySetOfSlots) { steer_around_slot_1(Transport::datagram); }

// The serving-prefix form the supervisor uses today is the special case.
TEST(SlotSocketsSteering, PrefixOfServingSlots) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port());
  std::vector<int> fds = open_slots(sockets, listener, 3);
  sockets.steer({listener}, 2);
  EXPECT_EQ(sockets.steered_slots(key_of(listener)), (std::vector<int>{0, 1}));
  std::vector<int> counts = spread(listener, fds, 100);
  EXPECT_EQ(counts[2], 0);
  sockets.steer({listener}, 3);
  EXPECT_TRUE(sockets.steered_slots(key_of(listener)).empty());
}

// An empty set is never programmed: the previous steering stays in force.
TEST(SlotSocketsSteering, EmptySetKeepsTheCurrentProgram) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port());
  std::vector<int> fds = open_slots(sockets, listener, 3);
  ASSERT_TRUE(sockets.steer(listener, {1}));
  EXPECT_FALSE(sockets.steer(listener, {}));
  EXPECT_FALSE(sockets.steer(listener, {7}));  // no such socket: empty too
  EXPECT_EQ(sockets.steered_slots(key_of(listener)), (std::vector<int>{1}));
  std::vector<int> counts = spread(listener, fds, 50);
  EXPECT_EQ(counts[1], 50);
}

// Closing a middle slot moves the group's last socket into its kernel index; the
// program follows, so steering still means slots, not positions. (Had it kept
// returning index 3 for slot 3, the index would be past the end of the group and
// the kernel would fall back to hashing over every socket, slot 2's included.)
TEST(SlotSocketsSteering, FollowsTheKernelOrderWhenAMiddleSlotCloses) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port());
  std::vector<int> fds = open_slots(sockets, listener, 4);
  ASSERT_TRUE(sockets.steer(listener, {0, 1, 3}));
  ListenerKey key = key_of(listener);
  sockets.retain_only({{key, 0}, {key, 2}, {key, 3}});  // slot 3 now sits at index 1
  EXPECT_EQ(sockets.steered_slots(key), (std::vector<int>{0, 3}));
  std::vector<int> counts = spread(listener, {fds[0], fds[2], fds[3]}, 200);
  EXPECT_EQ(counts[1], 0) << "slot 2 received traffic: the program did not follow the kernel order";
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[2], 0);
}

// A binary upgrade's two masters: each holds its own fds of the same sockets (in
// one process here: the successor adopts duplicates). `successor` adopts what
// `old` describes, as the new master does from its environment.
void adopt_duplicates(const SlotSockets& old, SlotSockets& successor);

// The old master with `slots` slots of one listener, and its successor holding them too.
struct TwoMasters {
  explicit TwoMasters(int slots) : listener(listener_on(test::loopback_any_port())) {
    fds = open_slots(old_master, listener, slots);
    adopt_duplicates(old_master, new_master);
  }
  SlotSockets old_master;
  ListenerConfig listener;
  std::vector<int> fds;  // the old master's
  SlotSockets new_master;
};

void adopt_duplicates(const SlotSockets& old, SlotSockets& successor) {
  std::vector<int> fds;
  std::string description = old.describe_for_upgrade(0, &fds);
  std::string renumbered;
  for (std::size_t i = 0, pos = 0; i < fds.size(); ++i) {
    std::size_t end = description.find(';', pos);
    std::string item = description.substr(pos, end - pos);
    renumbered += std::to_string(::fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) + item.substr(item.find(':')) + ";";
    pos = end + 1;
  }
  std::string error;
  ASSERT_TRUE(successor.adopt(renumbered, &error)) << error;
}

// The hazard: a socket stays in its group while any process holds it. A new
// master with fewer slots that closes its copies of the others believes the
// group smaller than it is; steering "all of its slots" then removes the
// program, and the kernel hashes new connections onto sockets the old master
// still holds but nobody polls. (Closing them, the unshared master also made
// them refuse new handshakes, see ASlotClosedWhileItsGroupStaysRefusesHandshakes:
// a client hashed there waits on SYN retries.)
TEST(SlotSocketsShared, ASuccessorThatForgetsTheOldMastersCopiesStrandsNewConnections) {
  TwoMasters masters(4);
  auto& [old_master, listener, fds, new_master] = masters;
  ListenerKey key = key_of(listener);
  new_master.retain_only({{key, 0}, {key, 1}});
  ASSERT_TRUE(new_master.steer(listener, {0, 1}));
  EXPECT_TRUE(new_master.steered_slots(key).empty()) << "it believes the group is its two sockets";
  std::vector<int> clients;
  for (int i = 0; i < 40; ++i) clients.push_back(connect_to(listener.address, /*blocking=*/false));
  int stranded = 0;
  for (int client : clients) {
    if (!test::wait_for(client, POLLOUT, stranded == 0 ? 500 : 0)) ++stranded;
    ::close(client);
  }
  std::printf("connections stranded on the old master's sockets: %d of 40\n", stranded);
  EXPECT_GT(stranded, 0) << "the kernel hashed over only two sockets";
}

// Closing a slot's socket while its group stays (TTOU, fewer workers on reload)
// refuses new handshakes on it first: the last close races SYNs on the other CPU
// (see SlotSockets::retain_only; bench/tools/reuseport_close_race reproduces the
// resets, ~1 in 60,000 closes). Not while shared: the other master may serve it.
// Not for a group closing whole: nothing else remains.
TEST(SlotSocketsRetain, ASlotClosedWhileItsGroupStaysRefusesHandshakesFirst) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port());
  ListenerKey key = key_of(listener);
  std::vector<int> fds = open_slots(sockets, listener, 3);
  // Duplicates keep the sockets alive past SlotSockets' close, to look at them.
  std::vector<int> watch;
  for (int fd : fds) watch.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 3));

  sockets.retain_only({{key, 0}, {key, 1}});
  EXPECT_TRUE(refusing_new_connections(watch[2])) << "closed without refusing handshakes first";
  EXPECT_FALSE(refusing_new_connections(watch[0]));
  EXPECT_FALSE(refusing_new_connections(watch[1]));

  sockets.set_shared(true);
  sockets.retain_only({{key, 0}});
  EXPECT_FALSE(refusing_new_connections(watch[1])) << "shared: the other master's to serve";

  sockets.set_shared(false);
  sockets.retain_only({});
  EXPECT_FALSE(refusing_new_connections(watch[0])) << "the group closed whole";
  for (int fd : watch) ::close(fd);
}

// The fix, in SlotSockets' terms: the new master keeps the old master's sockets
// while it lives (the supervisor's held set) and, shared, steers explicitly even
// to "all it knows": nothing new reaches the old master's extra slots.
TEST(SlotSocketsShared, SharedSteeringNamesItsSlotsAndNeverDetaches) {
  TwoMasters masters(4);
  auto& [old_master, listener, fds, new_master] = masters;
  new_master.set_shared(true);
  ASSERT_TRUE(new_master.steer(listener, {0, 1}));
  std::vector<int> counts = spread(listener, fds, 200);
  EXPECT_EQ(counts[2] + counts[3], 0) << "new connections reached the old master's extra slots";
  // Every socket it knows, still explicit: a group may have members it does not
  // know (the other master's), which the kernel's hash would feed.
  ASSERT_TRUE(new_master.steer(listener, {0, 1, 2, 3}));
  EXPECT_EQ(new_master.steered_slots(key_of(listener)), (std::vector<int>{0, 1, 2, 3}));
  // The old master, rolled back and shared, steers to its own: explicitly too,
  // although its slots are every socket it knows.
  old_master.set_shared(true);
  ASSERT_TRUE(old_master.steer(listener, {0, 1, 2, 3}));
  EXPECT_EQ(old_master.steered_slots(key_of(listener)), (std::vector<int>{0, 1, 2, 3}));
  // Alone again: all of them means no program.
  old_master.set_shared(false);
  ASSERT_TRUE(old_master.steer(listener, {0, 1, 2, 3}));
  EXPECT_TRUE(old_master.steered_slots(key_of(listener)).empty());
  for (int n : spread(listener, fds, 200)) EXPECT_GT(n, 0);
}

// Turning shared on forgets what the kernel is believed to hold: the other master
// may have attached a refusing filter (its reload removed the listener), which
// this master's next acquire() must clear although it never set one itself.
TEST(SlotSocketsShared, SharedForgetsTheFiltersTheOtherMasterMayHaveSet) {
  TwoMasters masters(2);
  auto& [old_master, listener, fds, new_master] = masters;
  old_master.set_shared(true);
  ListenerConfig other = listener_on(test::loopback_any_port());
  new_master.refuse_removed({other});  // the new configuration has no such listener
  for (int fd : fds) EXPECT_TRUE(refusing_new_connections(fd));
  std::string error;
  ASSERT_EQ(old_master.acquire(listener, 0, &error), fds[0]) << error;  // the rollback's generation
  for (int fd : fds) EXPECT_FALSE(refusing_new_connections(fd));
}

// Program size: 3 + 2 * min(allowed, skipped) instructions, so any set of a group
// of up to 4093 sockets fits in BPF_MAXINSNS; beyond, a set that does not fit
// yields no program, and steer() keeps the current one.
TEST(ReuseportProgram, SizeAndLimits) {
  EXPECT_EQ(reuseport_steering_program({}).size(), 0u);
  EXPECT_EQ(reuseport_steering_program({0, 1, 2}).size(), 3u);
  EXPECT_EQ(reuseport_steering_program({0, 2, 3}).size(), 5u);
  EXPECT_EQ(reuseport_steering_program({5}).size(), 3u);
  auto every_other = [](int group) {
    std::vector<int> indices;
    for (int i = 0; i < group; i += 2) indices.push_back(i);
    return indices;
  };
  std::vector<sock_filter> program = reuseport_steering_program(every_other(1024));
  EXPECT_LE(program.size(), 1030u);
  EXPECT_FALSE(reuseport_steering_program(every_other(4093)).empty());
  EXPECT_TRUE(reuseport_steering_program(every_other(8192)).empty());

  // The kernel takes the largest: attaching needs only one reuseport socket.
  std::vector<sock_filter> largest = reuseport_steering_program(every_other(4093));
  EXPECT_LE(largest.size(), static_cast<std::size_t>(BPF_MAXINSNS));
  std::string error;
  int fd = open_listen_socket(test::loopback_any_port(), Transport::datagram, 0, true, &error);
  ASSERT_GE(fd, 0) << error;
  for (auto* code : {&program, &largest}) {
    sock_fprog fprog{static_cast<unsigned short>(code->size()), code->data()};
    EXPECT_EQ(::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof fprog), 0) << code->size();
  }
  ::close(fd);
}

// Runs a steering program as the kernel would for a packet handled on `cpu`, with
// SKF_AD_RANDOM = `random`: the subset of classic BPF the builders emit. A jump
// out of the program or another opcode fails the test.
std::uint32_t run_program(const std::vector<sock_filter>& code, std::uint32_t cpu, std::uint32_t random) {
  std::uint32_t a = 0;
  for (std::size_t pc = 0; pc < code.size(); ++pc) {
    const sock_filter& op = code[pc];
    switch (op.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (op.k == static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_CPU)) a = cpu;
        else if (op.k == static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM)) a = random;
        else ADD_FAILURE() << "load of " << op.k;
        break;
      case BPF_ALU | BPF_MOD | BPF_K: a %= op.k; break;
      case BPF_ALU | BPF_ADD | BPF_K: a += op.k; break;
      case BPF_JMP | BPF_JEQ | BPF_K: pc += a == op.k ? op.jt : op.jf; break;
      case BPF_JMP | BPF_JGE | BPF_K: pc += a >= op.k ? op.jt : op.jf; break;
      case BPF_RET | BPF_A: return a;
      case BPF_RET | BPF_K: return op.k;
      default: ADD_FAILURE() << "opcode " << op.code << " at " << pc; return ~0u;
    }
  }
  ADD_FAILURE() << "the program ran off its end";
  return ~0u;
}

// The sockets a program picks for packets on `cpu`, over 1000 random values.
std::set<std::uint32_t> picks(const std::vector<sock_filter>& code, std::uint32_t cpu) {
  std::set<std::uint32_t> seen;
  for (std::uint32_t random = 0; random < 1000; ++random) seen.insert(run_program(code, cpu, random));
  return seen;
}

TEST(ReuseportProgram, PicksOnlyTheAllowedSocketsEachAsOften) {
  std::vector<sock_filter> code = reuseport_steering_program({0, 2, 3});
  EXPECT_EQ(picks(code, 0), (std::set<std::uint32_t>{0, 2, 3}));
  std::vector<int> count(4, 0);
  for (std::uint32_t random = 0; random < 3000; ++random) ++count[run_program(code, 0, random)];
  EXPECT_EQ(count, (std::vector<int>{1000, 0, 1000, 1000}));
  EXPECT_EQ(picks(reuseport_steering_program({1, 5}), 0), (std::set<std::uint32_t>{1, 5}));  // the table form
}

// worker_cpu_affinity: a packet on CPU c goes to a socket pinned to c; on a CPU
// without one (its slots steered away, or none of ours), to any allowed socket.
TEST(ReuseportProgram, CpuSteeringPrefersTheSocketsOfThePacketsCpu) {
  // Slots 0..3 on CPUs 0,1,0,1 (two workers per CPU).
  std::vector<sock_filter> code = reuseport_cpu_steering_program({0, 1, 2, 3}, {0, 1, 0, 1});
  EXPECT_EQ(picks(code, 0), (std::set<std::uint32_t>{0, 2}));
  EXPECT_EQ(picks(code, 1), (std::set<std::uint32_t>{1, 3}));
  EXPECT_EQ(picks(code, 7), (std::set<std::uint32_t>{0, 1, 2, 3}));
  // One per CPU; slot 2 steered away (retiring): CPU 0 has slot 0 only.
  EXPECT_EQ(picks(reuseport_cpu_steering_program({0, 1}, {0, 1}), 1), (std::set<std::uint32_t>{1}));
  EXPECT_EQ(picks(reuseport_cpu_steering_program({0, 1, 3}, {0, 1, 1}), 0), (std::set<std::uint32_t>{0}));
  // Both of CPU 0's slots away: its packets go to the others.
  EXPECT_EQ(picks(reuseport_cpu_steering_program({1, 3}, {1, 1}), 0), (std::set<std::uint32_t>{1, 3}));
  // Nothing pinned, or too many sockets on one CPU for a jump over them: the plain program.
  EXPECT_EQ(reuseport_cpu_steering_program({0, 2}, {-1, -1}).size(), reuseport_steering_program({0, 2}).size());
  // (200 sockets of every other index on CPU 0: 2 + 2 * 199 + 1 instructions to jump over.)
  std::vector<int> even(200), on_zero(200, 0);
  for (int i = 0; i < 200; ++i) even[static_cast<std::size_t>(i)] = 2 * i;
  EXPECT_EQ(reuseport_cpu_steering_program(even, on_zero).size(), reuseport_steering_program(even).size());
  std::vector<int> many(200);
  std::iota(many.begin(), many.end(), 0);
  // A prefix on one CPU is short whatever its size: the block is "random % n".
  EXPECT_EQ(picks(reuseport_cpu_steering_program(many, on_zero), 0).size(), 200u);
  std::vector<int> cpus(200);
  for (int i = 0; i < 200; ++i) cpus[static_cast<std::size_t>(i)] = i % 2;  // 100 per CPU: fits
  std::vector<sock_filter> wide = reuseport_cpu_steering_program(many, cpus);
  EXPECT_GT(wide.size(), reuseport_steering_program(many).size());
  EXPECT_EQ(picks(wide, 1).size(), 100u);
  for (std::uint32_t index : picks(wide, 1)) EXPECT_EQ(index % 2, 1u);
  EXPECT_TRUE(reuseport_cpu_steering_program({}, {}).empty());
}

// The calling thread on one CPU while it lives; the thread's mask back after.
class OnCpu {
 public:
  explicit OnCpu(int cpu) {
    EXPECT_EQ(::sched_getaffinity(0, sizeof saved_, &saved_), 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    EXPECT_EQ(::sched_setaffinity(0, sizeof one, &one), 0) << "CPU " << cpu;
  }
  ~OnCpu() { ::sched_setaffinity(0, sizeof saved_, &saved_); }
  OnCpu(const OnCpu&) = delete;
  OnCpu& operator=(const OnCpu&) = delete;

 private:
  cpu_set_t saved_;
};

// On the kernel: on loopback a SYN (or datagram) is handled on the sender's CPU,
// so connections from a thread pinned to CPU c must reach the slots on c only.
// Slots alternate between the first two CPUs the test may use; with one CPU, the
// second is a CPU number no packet is handled on.
void steer_by_cpu(Transport transport) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port(), transport);
  std::vector<int> fds = open_slots(sockets, listener, 4);
  std::vector<int> allowed = allowed_cpus();
  ASSERT_FALSE(allowed.empty());
  std::vector<int> cpus = {allowed[0], allowed.size() > 1 ? allowed[1] : CPU_SETSIZE - 1};
  const std::size_t real = std::min<std::size_t>(allowed.size(), 2);
  sockets.set_slot_cpus(cpus);
  ASSERT_TRUE(sockets.steer(listener, {0, 1, 2, 3}));
  EXPECT_EQ(sockets.steered_slots(key_of(listener)), (std::vector<int>{0, 1, 2, 3})) << "the program was detached";
  for (std::size_t k = 0; k < real; ++k) {
    OnCpu on(cpus[k]);
    std::vector<int> got = spread(listener, fds, 200);
    for (int slot = 0; slot < 4; ++slot) {
      if (cpu_for_slot(cpus, slot) == cpus[k]) EXPECT_GT(got[static_cast<std::size_t>(slot)], 40) << "slot " << slot;
      else EXPECT_EQ(got[static_cast<std::size_t>(slot)], 0) << "slot " << slot << " is on another CPU";
    }
  }
  OnCpu on(cpus[0]);
  ASSERT_TRUE(sockets.steer(listener, {0, 1, 3}));  // slot 2 retiring: CPU 0 has slot 0
  EXPECT_EQ(spread(listener, fds, 100), (std::vector<int>{100, 0, 0, 0}));
  ASSERT_TRUE(sockets.steer(listener, {1, 3}));  // none left on CPU 0: the others take its traffic
  std::vector<int> away = spread(listener, fds, 200);
  EXPECT_EQ(away[0] + away[2], 0);
  EXPECT_GT(away[1], 40);
  EXPECT_GT(away[3], 40);
  sockets.set_slot_cpus({});  // off again: back to the supervisor's set, by chance
  EXPECT_EQ(sockets.steered_slots(key_of(listener)), (std::vector<int>{1, 3}));
  ASSERT_TRUE(sockets.steer(listener, {0, 1, 2, 3}));
  EXPECT_TRUE(sockets.steered_slots(key_of(listener)).empty()) << "all slots without CPUs: the hash again";
  std::vector<int> all = spread(listener, fds, 200);
  EXPECT_GT(all[1], 0);
  EXPECT_GT(all[2], 0);
}

TEST(SlotSocketsCpuSteering, TcpConnectionsGoToASlotOnTheirCpu) { steer_by_cpu(Transport::stream); }
TEST(SlotSocketsCpuSteering, DatagramsGoToASlotOnTheirCpu) { steer_by_cpu(Transport::datagram); }

TEST(WorkerAffinity, SlotsTakeTheAllowedCpusInTurn) {
  EXPECT_EQ(cpu_for_slot({2, 5}, 0), 2);
  EXPECT_EQ(cpu_for_slot({2, 5}, 1), 5);
  EXPECT_EQ(cpu_for_slot({2, 5}, 2), 2);
  EXPECT_EQ(cpu_for_slot({}, 0), -1);
  std::vector<int> allowed = allowed_cpus();
  ASSERT_FALSE(allowed.empty());
  EXPECT_TRUE(std::is_sorted(allowed.begin(), allowed.end()));
  std::string error;
  EXPECT_FALSE(pin_to_cpu(::getpid(), -1, &error));
  EXPECT_NE(error.find("no CPU"), std::string::npos) << error;
}

// The master acquires every slot's sockets when it prepares a reload: that is
// where a changed backlog reaches the sockets it keeps.
TEST(SlotSocketsReload, AcquireAppliesAChangedBacklog) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port());
  listener.backlog = 16;
  std::vector<int> fds = open_slots(sockets, listener, 2);
  int queued = connect_to(listener.address);
  listener.backlog = 300;
  EXPECT_EQ(open_slots(sockets, listener, 2), fds);
  for (int fd : fds) EXPECT_EQ(listen_backlog(fd), 300);
  std::vector<int> counts = take_from_each(fds, 1);
  EXPECT_EQ(counts[0] + counts[1], 1) << "the queue did not survive the new backlog";
  ::close(queued);
}

// ... and where a reuseport change must fail the reload: sharing slot 0's socket
// would close (and reset) the other slots' queues, and the other way round the
// new sockets cannot join a socket outside any group.
TEST(SlotSocketsReload, AcquireRefusesAReuseportChange) {
  for (bool from : {true, false}) {
    SlotSockets sockets;
    ListenerConfig listener = listener_on(test::loopback_any_port());
    listener.reuseport = from;
    open_slots(sockets, listener, 2);
    listener.reuseport = !from;
    std::string error;
    EXPECT_EQ(sockets.acquire(listener, 0, &error), -1);
    EXPECT_EQ(error, "changing reuseport needs a restart") << "from " << from;
  }
}

TEST(SlotSocketsReload, ReuseportChangeNeedsARestart) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port());
  std::string why;
  EXPECT_TRUE(sockets.can_reload(listener, &why));  // no sockets yet: anything goes
  open_slots(sockets, listener, 2);
  EXPECT_TRUE(sockets.can_reload(listener, &why));
  listener.reuseport = false;
  EXPECT_FALSE(sockets.can_reload(listener, &why));
  EXPECT_EQ(why, "changing reuseport needs a restart");

  SlotSockets shared;
  listener.address = test::loopback_any_port();
  open_slots(shared, listener, 2);  // one socket for every slot
  EXPECT_EQ(shared.socket_count(), 1u);
  listener.reuseport = true;
  EXPECT_FALSE(shared.can_reload(listener, &why));
}

// A listener removed by a reload: its sockets refuse new connections, queued
// ones stay acceptable; configured again, they accept new ones again.
TEST(SlotSocketsReload, RemovedListenerRefusesNewConnectionsUntilConfiguredAgain) {
  SlotSockets sockets;
  ListenerConfig kept = listener_on(test::loopback_any_port());
  ListenerConfig removed = listener_on(test::loopback_any_port());
  open_slots(sockets, kept, 1);
  std::vector<int> fds = open_slots(sockets, removed, 2);
  int queued = connect_to(removed.address);
  ASSERT_GE(queued, 0);

  sockets.refuse_removed({kept});
  for (int fd : fds) EXPECT_TRUE(refusing_new_connections(fd));
  int client = connect_to(kept.address, /*blocking=*/false);
  EXPECT_TRUE(test::wait_for(client, POLLOUT, 2000)) << "a kept listener refused";
  ::close(client);
  int refused = connect_to(removed.address, /*blocking=*/false);
  EXPECT_FALSE(test::wait_for(refused, POLLOUT, 300));
  std::vector<int> counts = take_from_each(fds, 1);
  EXPECT_EQ(counts[0] + counts[1], 1) << "the connection queued before the reload is gone";

  std::string error;
  ASSERT_EQ(sockets.acquire(removed, 0, &error), fds[0]) << error;  // back in the next reload
  for (int fd : fds) EXPECT_FALSE(refusing_new_connections(fd));
  EXPECT_TRUE(test::wait_for(refused, POLLOUT, 5000)) << "its retried SYN was not answered";
  EXPECT_EQ(test::socket_error(refused), 0);
  ::close(refused);
  ::close(queued);
}

TEST(SlotSocketsReload, QueuedConnectionsOfASlot) {
  SlotSockets sockets;
  ListenerConfig listener = listener_on(test::loopback_any_port());
  std::vector<int> fds = open_slots(sockets, listener, 2);
  ASSERT_TRUE(sockets.steer(listener, {1}));
  EXPECT_EQ(sockets.queued_connections(listener, 1), 0);
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_to(listener.address));
  for (int i = 0; i < 100 && sockets.queued_connections(listener, 1) < 3; ++i) ::usleep(10000);
  EXPECT_EQ(sockets.queued_connections(listener, 1), 3);
  EXPECT_EQ(sockets.queued_connections(listener, 0), 0);
  EXPECT_EQ(sockets.queued_connections(listener, 5), 0);  // no such slot
  for (int fd : clients) ::close(fd);
}

}  // namespace
}  // namespace preforkd
