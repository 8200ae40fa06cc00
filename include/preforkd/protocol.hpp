// Registering a protocol: its name, its transport, its own [[listen]] keys and
// counters, the factory that makes a handler per listener in each worker, and the
// worker hooks. An application passes its Protocol objects to preforkd::main()
// (preforkd/main.hpp); the built-in http, tcp-echo and udp-echo are Protocol
// objects registered the same way.
//
// Processes: the same binary runs as master and as workers, and every process
// registers the same protocols. The master only reads the schema (declare()): it
// validates every config, at -t, start and each reload, against the declared keys,
// so a bad value is refused with FILE:LINE:COL before any worker sees it. The
// factories and hooks run only in workers, on the worker's loop thread.
//
// ABI: applications derive from Protocol, so its virtual functions and layout are
// fixed for the life of libpreforkd.so.0. Schema, Worker and Listener are
// implemented only by the library: functions may be added to them at the end.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <preforkd/export.hpp>
#include <preforkd/stream.hpp>

namespace preforkd {

enum class Transport { stream, datagram };

// A per-worker number the master shows in /metrics (see Schema::counter). Cheap: one
// pointer, add() is an increment. A default-constructed Counter counts into nothing.
// Use it on the loop thread only.
class Counter {
 public:
  Counter() noexcept : value_(&sink_) {}
  explicit Counter(std::uint64_t* value) noexcept : value_(value) {}
  void add(std::uint64_t n = 1) noexcept { *value_ += n; }
  // For gauges: the current value.
  void set(std::uint64_t value) noexcept { *value_ = value; }
  std::uint64_t value() const noexcept { return *value_; }

 private:
  std::uint64_t* value_;
  static inline std::uint64_t sink_ = 0;
};

// What a protocol declares in Protocol::declare(). Names of keys and counters are
// [a-z][a-z0-9_]*, at most 48 bytes. Keys are validated by the config loader (type,
// range, unknown key, a key of another protocol) with FILE:LINE:COL errors; a key not
// written takes its default. A key may not be one of the keys every listener has
// (name, address, protocol, backlog, reuseport, send_timeout, max_datagram_size).
// A bad declaration makes preforkd::main() fail at start, naming it.
class PREFORKD_API Schema {
 public:
  virtual void boolean(std::string_view key, bool default_value) = 0;
  // default_value must be within [min, max].
  virtual void integer(std::string_view key, std::int64_t default_value, std::int64_t min, std::int64_t max) = 0;
  // Seconds, written as a number or a string with units ("500ms", "1m30s"); 0 < t <= 3600.
  virtual void duration(std::string_view key, double default_seconds) = 0;
  // nullopt: the key is required.
  virtual void string(std::string_view key, std::optional<std::string_view> default_value) = 0;
  // A file name; a relative one is taken relative to the config file's directory.
  virtual void path(std::string_view key, std::optional<std::string_view> default_value) = 0;
  // Required; must be a readable directory (checked as the master's user); the
  // value is its canonical absolute path.
  virtual void directory(std::string_view key) = 0;
  // A counter (only grows; /metrics keeps the counts of workers that are gone, so
  // it never goes backwards) or a gauge (a level; summed over live workers). Shown
  // as preforkd_<protocol>_<name>_total (counter) or preforkd_<protocol>_<name>
  // (gauge), with '-' in the protocol's name written '_'.
  virtual void counter(std::string_view name, std::string_view help) = 0;
  virtual void gauge(std::string_view name, std::string_view help) = 0;

 protected:
  ~Schema() = default;
};

// The worker, as one protocol sees it. Valid from on_worker_start to the end of
// on_worker_exit.
class PREFORKD_API Worker {
 public:
  // The worker's event loop: timers, outbound connections, uv_queue_work (the
  // thread pool). Close every handle you open before on_worker_exit returns.
  virtual uv_loop_t* loop() const = 0;
  virtual int slot() const = 0;
  virtual unsigned generation() const = 0;
  // True from the moment retirement began (on_worker_retire) on.
  virtual bool retiring() const = 0;
  // A counter or gauge this protocol declared; throws std::invalid_argument for a
  // name it did not declare.
  virtual Counter counter(std::string_view name) const = 0;
  // The worker's request count: preforkd_requests_total and max_requests
  // recycling. The HTTP layer and datagram replies count themselves; a stream
  // protocol counts its own units of work (a command, a message).
  virtual Counter requests() const = 0;

 protected:
  ~Worker() = default;
};

// One [[listen]] table, as the factory sees it. Valid during the factory call; copy
// what the handler needs.
class PREFORKD_API Listener {
 public:
  virtual const std::string& name() const = 0;
  virtual std::string address() const = 0;  // "127.0.0.1:8080", "[::1]:80"
  virtual Worker& worker() const = 0;
  // The value of a key this protocol declared, written or default. Throws
  // std::invalid_argument for an undeclared key or another type. string() serves
  // string, path and directory keys.
  virtual bool boolean(std::string_view key) const = 0;
  virtual std::int64_t integer(std::string_view key) const = 0;
  virtual double duration(std::string_view key) const = 0;  // seconds
  virtual const std::string& string(std::string_view key) const = 0;

 protected:
  ~Listener() = default;
};

// A protocol. Derive, override what applies, and pass an instance (which must live
// as long as preforkd::main runs: a static or a local of your main) to
// preforkd::main(). Protocol itself, not derived, is a protocol that only names a
// transport (its listeners get sockets but no handler in a worker).
//
// Names are [a-z][a-z0-9-]*, at most 32 bytes, unique within the binary (the
// built-in http, tcp-echo and udp-echo are taken).
//
// In a worker, in this order:
//  1. on_worker_start, after the worker adopted its sockets and dropped privileges
//     (it runs as `user`), for each protocol that has at least one listener;
//  2. stream_handler / datagram_handler once per listener of this protocol;
//  3. serving; on_worker_retire when retirement begins (reload, QUIT, TTOU,
//     max_requests): stop starting new background work; sessions get on_retire;
//  4. once the last connection has closed (or at once on TERM): the handlers are
//     destroyed, then on_worker_exit: close every uv handle you own. The worker
//     then runs its loop until every close callback has run.
// An exception from a factory or on_worker_start fails the worker's start (logged;
// a reload is then abandoned and the old generation keeps serving). Exceptions from
// on_worker_retire and on_worker_exit are logged.
class PREFORKD_API Protocol {
 public:
  Protocol(std::string name, Transport transport);
  virtual ~Protocol();
  Protocol(const Protocol&) = delete;
  Protocol& operator=(const Protocol&) = delete;

  const std::string& name() const { return name_; }
  Transport transport() const { return transport_; }

  // The protocol's keys and counters. Runs once, at registration, in every process.
  virtual void declare(Schema& schema) const;
  // The handler for one listener (stream protocols); nullptr: this protocol does
  // not serve in a worker.
  virtual std::unique_ptr<StreamHandler> stream_handler(Listener& listener);
  // The handler for one listener (datagram protocols).
  virtual std::unique_ptr<DatagramHandler> datagram_handler(Listener& listener);
  virtual void on_worker_start(Worker& worker);
  virtual void on_worker_retire(Worker& worker);
  virtual void on_worker_exit(Worker& worker);

 private:
  std::string name_;
  Transport transport_;
};

}  // namespace preforkd
