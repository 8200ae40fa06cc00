// json-server: a small JSON API on preforkd's HTTP layer, written against the
// installed library only. The layer does the HTTP (parsing, keep-alive,
// pipelining, limits, timeouts, retirement, access log); this file only answers:
//
//   GET  /api/hello   {"greeting": <the listener's greeting key>, "pid": N, "slot": N, "generation": N}
//   POST /api/sum     body [1, 2.5, 3]  ->  {"sum": 6.5}      (400 for anything else)
//   GET  /api/slow    answered later: the work runs on libuv's thread pool
//                     (uv_queue_work) and the answer comes through a Deferred
//   anything else     404 {"error": "not found"}
//
// [[listen]] keys: the HTTP layer's (http::declare_keys), plus greeting (default
// "hello") and slow_ms (how long /api/slow works, default 20). Counters:
// preforkd_json_api_answers_total, preforkd_json_api_pool_jobs_total.
#include <preforkd/preforkd.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

namespace {

using preforkd::Counter;
using preforkd::http::Body;

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// [n, n, ...] -> their sum; false for anything that is not an array of numbers.
bool sum_of(std::string_view body, double* sum) {
  std::string text(body);
  const char* p = text.c_str();
  auto skip = [&] {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
  };
  skip();
  if (*p++ != '[') return false;
  *sum = 0;
  skip();
  if (*p == ']') {
    ++p;
    skip();
    return *p == '\0';
  }
  for (;;) {
    char* end = nullptr;
    double v = std::strtod(p, &end);
    if (end == p) return false;
    *sum += v;
    p = end;
    skip();
    if (*p == ',') {
      ++p;
      skip();
      continue;
    }
    if (*p++ != ']') return false;
    skip();
    return *p == '\0';
  }
}

class JsonApi final : public preforkd::http::Handler {
 public:
  JsonApi(preforkd::Listener& listener)
      : greeting_(listener.string("greeting")),
        slow_ms_(listener.integer("slow_ms")),
        worker_(listener.worker()),
        answers_(worker_.counter("answers")),
        pool_jobs_(worker_.counter("pool_jobs")) {}

  bool wants_body(const preforkd::http::Request& request) override { return request.method() == "POST"; }

  void on_request(preforkd::http::Exchange& exchange) override {
    const preforkd::http::Request& r = exchange.request();
    answers_.add();
    if (r.path() == "/api/hello" && (r.method() == "GET" || r.method() == "HEAD")) {
      return json(exchange, 200,
                  "{\"greeting\": " + json_string(greeting_) + ", \"pid\": " + std::to_string(getpid()) +
                      ", \"slot\": " + std::to_string(worker_.slot()) +
                      ", \"generation\": " + std::to_string(worker_.generation()) + "}");
    }
    if (r.path() == "/api/sum" && r.method() == "POST") {
      double sum = 0;
      if (!sum_of(r.body(), &sum)) return json(exchange, 400, "{\"error\": \"expected an array of numbers\"}");
      char number[64];
      std::snprintf(number, sizeof number, "%.17g", sum);
      return json(exchange, 200, std::string("{\"sum\": ") + number + "}");
    }
    if (r.path() == "/api/slow" && r.method() == "GET") return slow(exchange);
    json(exchange, 404, "{\"error\": \"not found\"}");
  }

 private:
  static void json(preforkd::http::Exchange& exchange, int status, std::string body) {
    exchange.respond(status, "Content-Type: application/json\r\n", Body::bytes(std::move(body) + "\n"));
  }

  // One thread-pool job: owns its uv_work_t (libuv's request) and the Deferred
  // answer. The after-callback runs on the loop thread, where answering is
  // allowed; if the client went away meanwhile, respond() just returns false.
  struct Job {
    uv_work_t work{};
    preforkd::http::Deferred answer;
    long ms = 0;
    std::string result;
  };

  void slow(preforkd::http::Exchange& exchange) {
    auto job = std::make_unique<Job>();
    job->answer = exchange.defer();
    job->ms = slow_ms_;
    job->work.data = job.get();
    int rc = uv_queue_work(
        worker_.loop(), &job->work,
        [](uv_work_t* w) {  // a pool thread: no preforkd or loop calls here
          auto* j = static_cast<Job*>(w->data);
          std::this_thread::sleep_for(std::chrono::milliseconds(j->ms));
          j->result = "{\"slept_ms\": " + std::to_string(j->ms) + "}\n";
        },
        [](uv_work_t* w, int status) {  // back on the loop
          std::unique_ptr<Job> j(static_cast<Job*>(w->data));
          if (status != 0) {
            j->answer.respond_error(503);
            return;
          }
          j->answer.respond(200, "Content-Type: application/json\r\n", Body::bytes(std::move(j->result)));
        });
    if (rc != 0) return exchange.respond_error(503);
    pool_jobs_.add();
    job.release();  // the after-callback owns it now
  }

  std::string greeting_;
  long slow_ms_;
  preforkd::Worker& worker_;
  Counter answers_, pool_jobs_;
};

class JsonProtocol final : public preforkd::Protocol {
 public:
  JsonProtocol() : Protocol("json-api", preforkd::Transport::stream) {}
  void declare(preforkd::Schema& schema) const override {
    preforkd::http::declare_keys(schema);
    schema.string("greeting", "hello");
    schema.integer("slow_ms", 20, 1, 10'000);
    schema.counter("answers", "Requests the JSON API answered.");
    schema.counter("pool_jobs", "Requests answered from libuv's thread pool.");
  }
  std::unique_ptr<preforkd::StreamHandler> stream_handler(preforkd::Listener& listener) override {
    return preforkd::http::serve(listener, std::make_unique<JsonApi>(listener));
  }
};

}  // namespace

int main(int argc, char** argv) {
  static JsonProtocol json;
  return preforkd::main(argc, argv, {json});
}
