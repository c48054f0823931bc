// The pieces of a resumed download and the pipe's ring (http/resume.hpp), without a network: the
// integration tests (test_network.sh) break real transfers; these pin the arithmetic under them.

#include "http/resume.hpp"

#include <doctest/doctest.h>

#include <deque>
#include <random>
#include <string>

using http::detail::Ring;

namespace {

std::string pop_all(Ring& ring) {
  std::string out(ring.size(), '\0');
  CHECK(ring.pop(out.data(), out.size()) == out.size());
  return out;
}

http::Response answer(long status, std::string content_range = {}) {
  http::Response r;
  r.status = status;
  if (!content_range.empty())
    r.headers.emplace_back("content-range", std::move(content_range));
  return r;
}

} // namespace

TEST_CASE("http::detail::Ring keeps bytes in order across the wrap and a grow") {
  Ring ring(8);
  ring.push("abcde", 5);
  char out[8];
  CHECK(ring.pop(out, 3) == 3);
  CHECK(std::string(out, 3) == "abc");
  ring.push("fghijk", 6); // wraps: 2 at the end, 4 at the start
  CHECK(ring.size() == 8);
  CHECK(ring.free() == 0);
  ring.grow(16); // while wrapped
  CHECK(ring.capacity() == 16);
  ring.push("lmnopqrs", 8);
  CHECK(pop_all(ring) == "defghijklmnopqrs");
  CHECK(ring.pop(out, 8) == 0); // empty: nothing, not garbage

  // Random pushes and pops against a deque.
  std::mt19937 random(42);
  Ring r(97);
  std::deque<char> expected;
  char next = 0;
  for (int step = 0; step < 20000; ++step) {
    if (random() % 2) {
      std::string data(random() % (r.free() + 1), '\0');
      for (auto& c : data)
        expected.push_back(c = next++);
      r.push(data.data(), data.size());
    } else {
      std::string got(random() % 120, '\0');
      got.resize(r.pop(got.data(), got.size()));
      for (char c : got) {
        REQUIRE_FALSE(expected.empty());
        REQUIRE(c == expected.front());
        expected.pop_front();
      }
    }
    REQUIRE(r.size() == expected.size());
  }
}

TEST_CASE("http::detail::resumed_answer: the rest from the offset, or an error") {
  CHECK(http::detail::resumed_answer(answer(206, "bytes 100-199/200"), 100).value() == 0);
  CHECK(http::detail::resumed_answer(answer(200), 100).value() == 100); // Range ignored: drop what we have
  auto wrong_start = http::detail::resumed_answer(answer(206, "bytes 0-199/200"), 100);
  REQUIRE_FALSE(wrong_start);
  CHECK(wrong_start.error().kind == http::ErrorKind::network);
  CHECK(wrong_start.error().message.find("Content-Range: bytes 0-199/200") != std::string::npos);
  CHECK_FALSE(http::detail::resumed_answer(answer(206, "bytes 1000-1099/2000"), 100)); // "100" is a prefix of "1000"
  CHECK_FALSE(http::detail::resumed_answer(answer(416), 100));
  CHECK_FALSE(http::detail::resumed_answer(answer(206), 100));
  // A hostile Content-Range reaches the message escaped.
  auto forged = http::detail::resumed_answer(answer(206, "bytes 5-\r\nmigration finished"), 100);
  REQUIRE_FALSE(forged);
  CHECK(forged.error().message.find('\n') == std::string::npos);
}

TEST_CASE("http::detail::ResumedBody drops what a server that ignored the Range sends again") {
  http::detail::ResumedBody body;
  body.expect(true);
  // 10 bytes were had; the server answers 200 with the whole body, in chunks of 4 then 20.
  CHECK(body.drop(answer(200), 10, 4).value() == 4);
  body.dropped(4);
  CHECK(body.drop(answer(200), 10, 20).value() == 6); // the answer is checked once, at the first chunk
  body.dropped(6);
  CHECK(body.drop(answer(200), 10, 20).value() == 0);
  // A 206 from the offset: nothing dropped.
  body.expect(true);
  CHECK(body.drop(answer(206, "bytes 10-29/30"), 10, 20).value() == 0);
  // Not a resumed download: nothing checked, nothing dropped.
  body.expect(false);
  CHECK(body.drop(answer(404), 10, 20).value() == 0);
  body.expect(true);
  CHECK_FALSE(body.drop(answer(404), 10, 20));
}

TEST_CASE("http::detail::rest_of and worth_resuming") {
  http::Request get;
  get.url = "http://r/v2/a/blobs/sha256:00";
  get.headers = {{"Accept", "*/*"}};
  auto again = http::detail::rest_of(get, 4096);
  CHECK(again.url == get.url);
  CHECK(http::header_of(again.headers, "range") == "bytes=4096-");
  CHECK(http::header_of(again.headers, "accept") == "*/*");

  auto reset = http::make_error(http::ErrorKind::network, "connection reset");
  auto stalled = http::make_error(http::ErrorKind::timeout, "stalled");
  CHECK(http::detail::worth_resuming(reset, 0, 100, 0));
  CHECK(http::detail::worth_resuming(stalled, 7, 200, 100));
  CHECK_FALSE(http::detail::worth_resuming(reset, http::Client::max_resumes, 200, 100)); // enough tries
  CHECK_FALSE(http::detail::worth_resuming(reset, 1, 100, 100));                         // no progress since
  CHECK_FALSE(http::detail::worth_resuming(http::make_error(http::ErrorKind::not_found, "gone", 404), 0, 100, 0));
}
