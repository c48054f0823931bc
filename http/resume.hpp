#pragma once
// The pieces of a download that broke and is asked again from where it stopped (Range), and the
// ring between the two halves of a pipe(): kept apart from client.cpp so that they can be tested
// without a network (tests/unit/resume_test.cpp).

#include "http/client.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

namespace http::detail {

/// Fixed-capacity byte ring between the download and the upload of one pipe().
class Ring {
public:
  // Not zero-filled: a small blob should not pay for clearing a full-size buffer.
  explicit Ring(std::size_t capacity) : m_buf(new char[capacity]), m_capacity(capacity) {}
  std::size_t size() const { return m_size; }
  std::size_t free() const { return m_capacity - m_size; }
  std::size_t capacity() const { return m_capacity; }
  void grow(std::size_t capacity) {
    std::unique_ptr<char[]> bigger(new char[capacity]);
    std::size_t n = pop(bigger.get(), m_size);
    m_buf = std::move(bigger);
    m_capacity = capacity;
    m_head = 0;
    m_size = n;
  }
  void push(const char* data, std::size_t len) {
    std::size_t tail = (m_head + m_size) % m_capacity;
    std::size_t first = std::min(len, m_capacity - tail);
    std::memcpy(m_buf.get() + tail, data, first);
    std::memcpy(m_buf.get(), data + first, len - first);
    m_size += len;
  }
  std::size_t pop(char* out, std::size_t max) {
    std::size_t len = std::min(max, m_size);
    std::size_t first = std::min(len, m_capacity - m_head);
    std::memcpy(out, m_buf.get() + m_head, first);
    std::memcpy(out + first, m_buf.get(), len - first);
    m_head = (m_head + len) % m_capacity;
    m_size -= len;
    return len;
  }

private:
  std::unique_ptr<char[]> m_buf;
  std::size_t m_capacity;
  std::size_t m_head = 0;
  std::size_t m_size = 0;
};

/// How many leading body bytes to drop from the answer to `Range: bytes=<offset>-`: none for a
/// 206 that starts there, `offset` for a 200 (the server ignored the Range); anything else is
/// an error.
Result<std::uint64_t> resumed_answer(const Response& r, std::uint64_t offset);

/// The request for the rest of a body, from byte `offset` on.
Request rest_of(const Request& r, std::uint64_t offset);

/// A resumed download answered with something other than its rest (a 401 for an expired token,
/// a 404, a 416): an error of its own, so that no caller takes the answer for the whole blob's.
Error resumed_refused(const Request& r, const Response& answer, std::uint64_t offset);

/// Whether a broken download is worth asking again from where it stopped: it broke in a way
/// that may pass, and it got somewhere since it started or was last resumed (at `resumed_at`).
bool worth_resuming(const Error& why, unsigned resumes, std::uint64_t streamed, std::uint64_t resumed_at);

/// The body of a resumed download: its answer is checked at the first body byte, then the bytes a
/// server that ignored the Range sent again are dropped.
struct ResumedBody {
  bool check = false;
  std::uint64_t skip = 0;
  void expect(bool resumed) {
    check = resumed;
    skip = 0;
  }
  /// How many leading bytes of this chunk of `total` to drop (the answer to a request for the rest
  /// from `offset`); an error when the answer is not that rest.
  Result<std::size_t> drop(const Response& answer, std::uint64_t offset, std::size_t total) {
    if (check) {
      check = false;
      auto s = resumed_answer(answer, offset);
      if (!s)
        return s.error();
      skip = *s;
    }
    return static_cast<std::size_t>(std::min<std::uint64_t>(skip, total));
  }
  /// Those bytes are gone (not before: a paused chunk comes again whole).
  void dropped(std::size_t n) { skip -= n; }
};

} // namespace http::detail
