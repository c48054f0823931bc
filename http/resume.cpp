#include "http/resume.hpp"

#include "http/url.hpp"
#include "util/text.hpp"

namespace http::detail {

/// How many leading body bytes to drop from the answer to `Range: bytes=<offset>-`: none for a
/// 206 that starts there, `offset` for a 200 (the server ignored the Range); anything else is
/// an error.
Result<std::uint64_t> resumed_answer(const Response& r, std::uint64_t offset) {
  if (r.status == 200)
    return offset;
  // 206: "Content-Range: bytes FIRST-LAST/LENGTH" must start at the offset asked for.
  const std::string range = r.header("content-range");
  if (r.status == 206 && range.rfind("bytes " + std::to_string(offset) + "-", 0) == 0)
    return std::uint64_t{0};
  return make_error(ErrorKind::network, "the resumed download (Range: bytes=" + std::to_string(offset) +
                                            "-) answered HTTP " + std::to_string(r.status) +
                                            (range.empty() ? std::string() : " with Content-Range: " + util::escape_control(range.substr(0, 100))));
}

/// The request for the rest of a body, from byte `offset` on.
Request rest_of(const Request& r, std::uint64_t offset) {
  Request again = r;
  again.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-");
  return again;
}


/// A resumed download answered with something other than its rest (a 401 for an expired token,
/// a 404, a 416): an error of its own, so that no caller takes the answer for the whole blob's.
Error resumed_refused(const Request& r, const Response& answer, std::uint64_t offset) {
  return make_error(ErrorKind::network, r.method + " " + redact_url(r.url) + ": HTTP " + std::to_string(answer.status) +
                                            " to the request for the rest of the body from byte " +
                                            std::to_string(offset));
}

/// Whether a broken download is worth asking again from where it stopped: it broke in a way
/// that may pass, and it got somewhere since it started or was last resumed (at `resumed_at`).
bool worth_resuming(const Error& why, unsigned resumes, std::uint64_t streamed, std::uint64_t resumed_at) {
  return (why.kind == ErrorKind::network || why.kind == ErrorKind::timeout) && resumes < Client::max_resumes &&
         streamed > resumed_at;
}

} // namespace http::detail
