// Single ownership of libuv handles. libuv needs a handle's memory until its close
// callback has run, which may be after the owning C++ object is gone; so the handle
// lives on the heap and the close callback frees it. Owners store themselves in
// handle->data and find themselves with owner_of(); reset() clears data first, so a
// late callback (a write cancelled by the close) can see that its owner is gone.
//
// A protocol's own timers, outbound connections and the like should be held this
// way: destroying the owner (or reset()) closes the handle safely at any time the
// loop still runs.
#pragma once

#include <uv.h>

#include <utility>

namespace preforkd {

template <class T>
class UvHandle {
 public:
  UvHandle() = default;
  explicit UvHandle(void* owner) : h_(new T{}) { h_->data = owner; }
  ~UvHandle() { reset(); }
  UvHandle(UvHandle&& other) noexcept : h_(std::exchange(other.h_, nullptr)), live_(other.live_) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, nullptr);
      live_ = other.live_;
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  T* get() const { return h_; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(h_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(h_); }
  explicit operator bool() const { return h_ != nullptr && live_; }

  // Call after uv_*_init succeeded; from then on the handle must be closed, not deleted.
  void mark_initialized() { live_ = true; }

  void reset() {
    if (!h_) return;
    h_->data = nullptr;
    if (live_ && !uv_is_closing(handle())) {
      uv_close(handle(), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
    } else if (!live_) {
      delete h_;
    }
    h_ = nullptr;
    live_ = false;
  }

 private:
  T* h_ = nullptr;
  bool live_ = false;
};

template <class Owner, class Handle>
Owner* owner_of(Handle* h) {
  return static_cast<Owner*>(h->data);
}

}  // namespace preforkd
