// fault_proxy: an HTTP/1.1 reverse proxy for the integration tests that sits in
// front of one upstream registry and injects faults on chosen requests.
//
//   fault_proxy --upstream HOST:PORT [--port P | --port-file FILE]
//               [--rules FILE] [--log FILE]
//
// It listens on 127.0.0.1 (port P, default: a free one, written to --port-file)
// and forwards every request and response byte for byte: keep-alive,
// Content-Length and chunked bodies both ways, HEAD, 1xx interim responses
// (Expect: 100-continue), redirects. The only change it makes is to absolute
// Location headers that point at the upstream: they are rewritten to point at
// the proxy, so upload sessions keep going through it.
//
// Rules (--rules FILE, re-read whenever its contents or mtime change; match
// counters start again from zero then), one per line, '#' starts a comment:
//
//   METHOD PATH_REGEX ACTION [count=N|inf] [after=N] [retry-after=S] [header=NAME:VALUE]
//
//   METHOD      GET, PUT, ..., several as GET|HEAD, or * for any.
//   PATH_REGEX  ECMAScript regex searched (not anchored unless you anchor it)
//               in the request target, path and query, e.g. ^/v2/ns/app/blobs/
//   ACTION
//     status=CODE                     answer CODE without forwarding
//                                     (retry-after=S adds Retry-After: S,
//                                     header=NAME:VALUE adds that header; no spaces)
//     reset-response-after=BYTES      forward, then reset the client connection
//                                     (RST, SO_LINGER 0) after BYTES of the body
//     reset-request-after=BYTES       reset both connections after forwarding
//                                     BYTES of the request body
//     truncate-response=BYTES         send BYTES of the response body, then close
//                                     cleanly (FIN) although more was promised
//     stall-response-after=BYTES,SECS pause SECS (fractions allowed) after BYTES
//                                     of the response body, then go on
//     corrupt-response-byte=OFFSET    flip the lowest bit of the body byte at OFFSET
//                                     (text stays text: '2' -> '3', 'l' -> 'm')
//     drop-header=NAME                forward the request without its NAME header
//                                     (e.g. drop-header=range: a server that ignores Range)
//     delay=SECS                      wait SECS (fractions allowed) before forwarding the
//                                     request: a slow answer, HEADs included
//     shift-range=BYTES               forward "Range: bytes=FIRST-..." as starting BYTES
//                                     earlier (at 0 at the least): a server whose 206
//                                     does not start where it was asked to
//   count=N     apply to N matching requests (default 1; inf = all)
//   after=N     let the first N matching requests through untouched
//
// Every rule whose METHOD and PATH_REGEX match a request counts it; the first
// rule in file order whose window (after < n <= after+count) contains the count
// is applied. Body offsets count payload bytes (chunk framing excluded).
//
// Log (--log FILE, default stderr), one line per request when it is done:
//
//   EPOCH_SECONDS METHOD TARGET STATUS ACTION
//
// EPOCH_SECONDS (millisecond precision) is when the request arrived. STATUS is
// the status sent to the client ("-" when the connection was cut before a
// response). ACTION is "-", the rule's action text, the action followed by
// "(not-reached)" when the body was too short for it, or upstream-unreachable /
// upstream-closed / client-closed. Header values are never logged.
//
// --max-in-flight FILE: the largest number of requests handled at the same time so far (from a
// request's head to the end of its response), rewritten whenever it grows. For the tests of
// per-registry concurrency caps.
//
// --busy-above N: a request that arrives while more than N requests are in flight (itself
// included) is answered 429 Too Many Requests without forwarding (logged as "busy-above"), before
// any rule: a registry that sheds load above N concurrent requests.
//
// Thread per connection; SIGTERM / SIGINT end the process at once.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr std::uint64_t kInf = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kMaxHead = 64 * 1024;
constexpr std::size_t kMaxLine = 16 * 1024;

// ------------------------------------------------------------------ options

std::string g_upstream_host = "127.0.0.1";
int g_upstream_port = 0;
int g_proxy_port = 0;
std::string g_rules_path;
int g_log_fd = 2;
std::mutex g_log_mutex;

double now_epoch() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

void log_line(double t, const std::string& method, const std::string& target, const std::string& status,
              const std::string& action) {
  char ts[32];
  std::snprintf(ts, sizeof ts, "%.3f", t);
  std::string line = std::string(ts) + " " + method + " " + target + " " + status + " " + action + "\n";
  std::lock_guard lock(g_log_mutex);
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(g_log_fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::string g_in_flight_path;
std::atomic<int> g_in_flight{0};
std::atomic<int> g_in_flight_max{0};
std::mutex g_in_flight_mutex;

/// Counts one request in flight while it lives (see --max-in-flight).
int g_busy_above = 0;

struct InFlight {
  int now = 0; ///< requests in flight when this one arrived, itself included
  InFlight() {
    now = ++g_in_flight;
    if (g_in_flight_path.empty())
      return;
    std::lock_guard lock(g_in_flight_mutex);
    if (now <= g_in_flight_max.load())
      return;
    g_in_flight_max = now;
    std::string tmp = g_in_flight_path + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%d\n", now);
      std::fclose(f);
      std::rename(tmp.c_str(), g_in_flight_path.c_str());
    }
  }
  ~InFlight() { --g_in_flight; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

void note(const std::string& s) {
  std::string line = "fault_proxy: " + s + "\n";
  std::lock_guard lock(g_log_mutex);
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos)
    return {};
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// ------------------------------------------------------------------ rules

enum class Kind { None, Status, ResetResponse, ResetRequest, Truncate, Stall, Corrupt, DropHeader, ShiftRange, Delay };

struct Rule {
  std::vector<std::string> methods; // empty: any
  std::regex path;
  Kind kind = Kind::None;
  int status = 0;
  long retry_after = -1;
  std::string header; // "Name: value" for synthetic responses, or the lower-case name to drop
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::uint64_t count = 1;
  std::uint64_t after = 0;
  std::uint64_t matched = 0;
  std::string action; // text for the log
};

/// What one request gets: a copy of the applied rule's action.
struct Applied {
  Kind kind = Kind::None;
  int status = 0;
  long retry_after = -1;
  std::string header;
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::string action = "-";
};

std::mutex g_rules_mutex;
std::vector<Rule> g_rules;
std::string g_rules_content;
struct timespec g_rules_mtime {};
bool g_rules_loaded = false;

bool parse_u64(const std::string& s, std::uint64_t& out) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), ::isdigit))
    return false;
  errno = 0;
  out = std::strtoull(s.c_str(), nullptr, 10);
  return errno == 0;
}

/// A number of seconds, fractions allowed, not negative.
bool parse_seconds(const std::string& s, double& out) {
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return !s.empty() && *end == '\0' && out >= 0;
}

std::optional<Rule> parse_rule(const std::string& text, std::string& err) {
  std::istringstream in(text);
  std::vector<std::string> tok;
  for (std::string t; in >> t;)
    tok.push_back(t);
  if (tok.size() < 3) {
    err = "expected METHOD PATH_REGEX ACTION";
    return std::nullopt;
  }
  Rule r;
  if (tok[0] != "*") {
    std::size_t start = 0;
    while (start <= tok[0].size()) {
      std::size_t bar = tok[0].find('|', start);
      if (bar == std::string::npos)
        bar = tok[0].size();
      std::string m = tok[0].substr(start, bar - start);
      for (auto& c : m)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (!m.empty())
        r.methods.push_back(m);
      start = bar + 1;
    }
  }
  try {
    r.path = std::regex(tok[1], std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    err = "bad regex '" + tok[1] + "': " + e.what();
    return std::nullopt;
  }
  const std::string& a = tok[2];
  auto eq = a.find('=');
  if (eq == std::string::npos) {
    err = "bad action '" + a + "'";
    return std::nullopt;
  }
  std::string name = a.substr(0, eq), value = a.substr(eq + 1);
  r.action = a;
  if (name == "status") {
    std::uint64_t v;
    if (!parse_u64(value, v) || v < 100 || v > 999) {
      err = "bad status '" + value + "'";
      return std::nullopt;
    }
    r.kind = Kind::Status;
    r.status = static_cast<int>(v);
  } else if (name == "drop-header") {
    if (value.empty()) {
      err = "drop-header needs a header name";
      return std::nullopt;
    }
    r.kind = Kind::DropHeader;
    r.header = lower(value);
  } else if (name == "delay") {
    if (!parse_seconds(value, r.seconds)) {
      err = "delay needs a number of seconds";
      return std::nullopt;
    }
    r.kind = Kind::Delay;
  } else if (name == "shift-range") {
    if (!parse_u64(value, r.bytes)) {
      err = "shift-range needs a number of bytes";
      return std::nullopt;
    }
    r.kind = Kind::ShiftRange;
  } else if (name == "stall-response-after") {
    auto comma = value.find(',');
    if (comma == std::string::npos || !parse_u64(value.substr(0, comma), r.bytes) ||
        !parse_seconds(value.substr(comma + 1), r.seconds)) {
      err = "stall-response-after needs BYTES,SECONDS";
      return std::nullopt;
    }
    r.kind = Kind::Stall;
  } else {
    std::uint64_t b;
    if (!parse_u64(value, b)) {
      err = "bad number in '" + a + "'";
      return std::nullopt;
    }
    r.bytes = b;
    if (name == "reset-response-after")
      r.kind = Kind::ResetResponse;
    else if (name == "reset-request-after")
      r.kind = Kind::ResetRequest;
    else if (name == "truncate-response")
      r.kind = Kind::Truncate;
    else if (name == "corrupt-response-byte")
      r.kind = Kind::Corrupt;
    else {
      err = "unknown action '" + name + "'";
      return std::nullopt;
    }
  }
  for (std::size_t i = 3; i < tok.size(); ++i) {
    const std::string& o = tok[i];
    auto e = o.find('=');
    std::string k = e == std::string::npos ? o : o.substr(0, e);
    std::string v = e == std::string::npos ? "" : o.substr(e + 1);
    if (k == "count") {
      if (v == "inf")
        r.count = kInf;
      else if (!parse_u64(v, r.count)) {
        err = "bad count '" + v + "'";
        return std::nullopt;
      }
    } else if (k == "after") {
      if (!parse_u64(v, r.after)) {
        err = "bad after '" + v + "'";
        return std::nullopt;
      }
    } else if (k == "retry-after") {
      std::uint64_t ra;
      if (!parse_u64(v, ra)) {
        err = "bad retry-after '" + v + "'";
        return std::nullopt;
      }
      r.retry_after = static_cast<long>(ra);
      r.action += " retry-after=" + v;
    } else if (k == "header") {
      auto colon = v.find(':');
      if (colon == std::string::npos || colon == 0) {
        err = "bad header '" + v + "' (NAME:VALUE)";
        return std::nullopt;
      }
      r.header = v.substr(0, colon) + ": " + v.substr(colon + 1);
      r.action += " header=" + v.substr(0, colon);
    } else {
      err = "unknown option '" + o + "'";
      return std::nullopt;
    }
  }
  return r;
}

/// Re-reads the rules file if it changed. Caller holds g_rules_mutex.
void reload_rules_locked() {
  if (g_rules_path.empty())
    return;
  struct stat st {};
  std::string content;
  bool exists = ::stat(g_rules_path.c_str(), &st) == 0;
  if (exists) {
    std::ifstream f(g_rules_path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    content = ss.str();
  }
  bool same_time = exists && st.st_mtim.tv_sec == g_rules_mtime.tv_sec && st.st_mtim.tv_nsec == g_rules_mtime.tv_nsec;
  if (g_rules_loaded && content == g_rules_content && (same_time || !exists))
    return;
  g_rules_loaded = true;
  g_rules_content = content;
  g_rules_mtime = exists ? st.st_mtim : timespec{};
  g_rules.clear();
  std::istringstream in(content);
  int lineno = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    if (auto h = line.find('#'); h != std::string::npos)
      line.erase(h);
    line = trim(line);
    if (line.empty())
      continue;
    std::string err;
    if (auto r = parse_rule(line, err))
      g_rules.push_back(std::move(*r));
    else
      note(g_rules_path + ":" + std::to_string(lineno) + ": " + err + " (rule ignored)");
  }
  note("rules loaded: " + std::to_string(g_rules.size()) + " rule(s)");
}

Applied pick_rule(const std::string& method, const std::string& target) {
  std::lock_guard lock(g_rules_mutex);
  reload_rules_locked();
  Applied out;
  bool applied = false;
  for (auto& r : g_rules) {
    if (!r.methods.empty() && std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end())
      continue;
    if (!std::regex_search(target, r.path))
      continue;
    std::uint64_t n = ++r.matched; // 1-based index of this match
    bool in_window = n > r.after && (r.count == kInf || n - r.after <= r.count);
    if (in_window && !applied) {
      applied = true;
      out.kind = r.kind;
      out.status = r.status;
      out.retry_after = r.retry_after;
      out.header = r.header;
      out.bytes = r.bytes;
      out.seconds = r.seconds;
      out.action = r.action;
    }
  }
  return out;
}

// ------------------------------------------------------------------ sockets

bool send_all(int fd, const char* p, std::size_t n) {
  if (fd < 0)
    return true; // discard
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool send_all(int fd, const std::string& s) { return send_all(fd, s.data(), s.size()); }

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// Closes with RST.
void close_reset(int& fd) {
  if (fd < 0)
    return;
  struct linger lg {1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
  fd = -1;
}

/// Closes with FIN, reading (and dropping) what the peer still sends for a
/// moment so that unread input does not turn the close into a reset.
void close_graceful(int& fd) {
  if (fd < 0)
    return;
  ::shutdown(fd, SHUT_WR);
  char buf[16384];
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0)
      continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
  }
  ::close(fd);
  fd = -1;
}

void close_plain(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

int connect_upstream() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(g_upstream_port));
  if (::inet_pton(AF_INET, g_upstream_host == "localhost" ? "127.0.0.1" : g_upstream_host.c_str(), &a.sin_addr) != 1) {
    ::close(fd);
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  set_nodelay(fd);
  return fd;
}

/// True if an idle keep-alive connection has been closed (or sent something unexpected).
bool is_stale(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

/// Buffered reader over a socket.
struct Reader {
  int fd = -1;
  std::string buf;
  std::size_t pos = 0;

  std::size_t avail() const { return buf.size() - pos; }
  const char* data() const { return buf.data() + pos; }

  bool fill() {
    if (pos == buf.size()) {
      buf.clear();
      pos = 0;
    } else if (pos > (1u << 20)) {
      buf.erase(0, pos);
      pos = 0;
    }
    char tmp[65536];
    for (;;) {
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return false;
      buf.append(tmp, static_cast<std::size_t>(n));
      return true;
    }
  }

  /// Reads up to and including the blank line. `got_any` tells whether any byte came.
  std::optional<std::string> read_head(bool& got_any) {
    got_any = avail() > 0;
    for (;;) {
      std::size_t e = buf.find("\r\n\r\n", pos);
      if (e != std::string::npos) {
        std::string head = buf.substr(pos, e + 4 - pos);
        pos = e + 4;
        return head;
      }
      if (avail() > kMaxHead || !fill())
        return std::nullopt;
      got_any = true;
    }
  }

  /// One line including its LF.
  std::optional<std::string> read_line() {
    for (;;) {
      std::size_t e = buf.find('\n', pos);
      if (e != std::string::npos) {
        std::string line = buf.substr(pos, e + 1 - pos);
        pos = e + 1;
        return line;
      }
      if (avail() > kMaxLine || !fill())
        return std::nullopt;
    }
  }
};

// ------------------------------------------------------------------ HTTP heads

struct Head {
  std::string first;                                      // request or status line, no CRLF
  std::vector<std::pair<std::string, std::string>> fields; // raw name, raw value
  std::string get(const std::string& name) const {
    std::string key = lower(name);
    for (const auto& [k, v] : fields)
      if (lower(k) == key)
        return v;
    return {};
  }
  bool has_token(const std::string& name, const std::string& token) const {
    std::string key = lower(name);
    for (const auto& [k, v] : fields)
      if (lower(k) == key && lower(v).find(token) != std::string::npos)
        return true;
    return false;
  }
  bool has(const std::string& name) const {
    std::string key = lower(name);
    for (const auto& f : fields)
      if (lower(f.first) == key)
        return true;
    return false;
  }
};

/// A request head without the header lines named `name` (lower case).
/// The request head with each NAME header (lower case) replaced by edit(value), or left out
/// where edit gives nullopt.
std::string edit_header(const std::string& raw, const std::string& name,
                        const std::function<std::optional<std::string>(const std::string&)>& edit) {
  std::string out;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    std::size_t eol = raw.find("\r\n", pos);
    std::size_t next = eol == std::string::npos ? raw.size() : eol + 2;
    std::string line = raw.substr(pos, next - pos);
    auto colon = line.find(':');
    if (pos == 0 || colon == std::string::npos || lower(trim(line.substr(0, colon))) != name) {
      out += line;
    } else if (auto value = edit(trim(line.substr(colon + 1)))) {
      out += line.substr(0, colon) + ": " + *value + "\r\n";
    }
    pos = next;
  }
  return out;
}

/// "bytes=FIRST-REST" with FIRST moved `by` bytes earlier (not below 0); other values unchanged.
std::string shifted_range(const std::string& value, std::uint64_t by) {
  static const std::regex form(R"(bytes=(\d+)-(.*))");
  std::smatch m;
  std::uint64_t first = 0;
  if (!std::regex_match(value, m, form) || !parse_u64(m[1].str(), first))
    return value;
  return "bytes=" + std::to_string(first > by ? first - by : 0) + "-" + m[2].str();
}

std::optional<Head> parse_head(const std::string& raw) {
  Head h;
  std::size_t p = 0;
  bool first = true;
  while (p < raw.size()) {
    std::size_t e = raw.find("\r\n", p);
    if (e == std::string::npos)
      e = raw.size();
    std::string line = raw.substr(p, e - p);
    p = e + 2;
    if (first) {
      h.first = line;
      first = false;
      continue;
    }
    if (line.empty())
      break;
    auto colon = line.find(':');
    if (colon == std::string::npos)
      return std::nullopt;
    h.fields.emplace_back(line.substr(0, colon), trim(line.substr(colon + 1)));
  }
  if (h.first.empty())
    return std::nullopt;
  return h;
}

enum class Framing { None, Length, Chunked, UntilClose };

/// Rewrites absolute Location values that point at the upstream.
std::string rewrite_location(const std::string& raw_head) {
  std::string out;
  std::size_t p = 0;
  std::vector<std::string> upstream_auth = {g_upstream_host + ":" + std::to_string(g_upstream_port),
                                            "localhost:" + std::to_string(g_upstream_port),
                                            "127.0.0.1:" + std::to_string(g_upstream_port)};
  while (p < raw_head.size()) {
    std::size_t e = raw_head.find("\r\n", p);
    if (e == std::string::npos)
      e = raw_head.size();
    std::string line = raw_head.substr(p, e - p);
    std::size_t colon = line.find(':');
    if (colon != std::string::npos && lower(line.substr(0, colon)) == "location") {
      std::string v = trim(line.substr(colon + 1));
      for (const char* scheme : {"http://", "https://"}) {
        std::string s = scheme;
        if (v.compare(0, s.size(), s) != 0)
          continue;
        std::size_t slash = v.find('/', s.size());
        std::string auth = v.substr(s.size(), slash == std::string::npos ? std::string::npos : slash - s.size());
        if (std::find(upstream_auth.begin(), upstream_auth.end(), auth) != upstream_auth.end()) {
          v = "http://127.0.0.1:" + std::to_string(g_proxy_port) + (slash == std::string::npos ? "" : v.substr(slash));
          line = line.substr(0, colon) + ": " + v;
        }
        break;
      }
    }
    out += line;
    if (e < raw_head.size())
      out += "\r\n";
    p = e + 2;
  }
  return out;
}

// ------------------------------------------------------------------ body pump

struct Fault {
  Kind kind = Kind::None; // only body faults here
  std::uint64_t at = 0;
  double seconds = 0;
  bool fired = false;
};

enum class Pumped { Ok, SrcClosed, DstFailed, Cut };

/// Copies one message body from `src` to `dst` (dst -1: discard), applying `fault`.
class Pump {
public:
  Pump(Reader& src, int dst, Fault& fault) : m_src(src), m_dst(dst), m_fault(fault) {}

  Pumped run(Framing framing, std::uint64_t length) {
    switch (framing) {
    case Framing::None:
      return Pumped::Ok;
    case Framing::Length:
      return payload(length);
    case Framing::UntilClose:
      for (;;) {
        if (m_src.avail() == 0 && !m_src.fill())
          return Pumped::Ok;
        std::size_t n = m_src.avail();
        auto st = emit(m_src.data(), n);
        m_src.pos += n;
        if (st != Pumped::Ok)
          return st;
      }
    case Framing::Chunked:
      for (;;) {
        auto line = m_src.read_line();
        if (!line)
          return Pumped::SrcClosed;
        if (!send_all(m_dst, *line))
          return Pumped::DstFailed;
        char* end = nullptr;
        std::uint64_t size = std::strtoull(line->c_str(), &end, 16);
        if (end == line->c_str())
          return Pumped::SrcClosed; // garbage framing: give up
        if (size == 0) {
          for (;;) { // trailers up to the blank line
            auto t = m_src.read_line();
            if (!t)
              return Pumped::SrcClosed;
            if (!send_all(m_dst, *t))
              return Pumped::DstFailed;
            if (*t == "\r\n" || *t == "\n")
              return Pumped::Ok;
          }
        }
        if (auto st = payload(size); st != Pumped::Ok)
          return st;
        auto crlf = m_src.read_line();
        if (!crlf)
          return Pumped::SrcClosed;
        if (!send_all(m_dst, *crlf))
          return Pumped::DstFailed;
      }
    }
    return Pumped::Ok;
  }

  std::uint64_t offset() const { return m_off; }

private:
  Pumped payload(std::uint64_t remaining) {
    while (remaining > 0) {
      if (m_src.avail() == 0 && !m_src.fill())
        return Pumped::SrcClosed;
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(m_src.avail(), remaining));
      auto st = emit(m_src.data(), n);
      m_src.pos += n;
      remaining -= n;
      if (st != Pumped::Ok)
        return st;
    }
    return Pumped::Ok;
  }

  Pumped emit(const char* p, std::size_t n) {
    Fault& f = m_fault;
    const std::uint64_t end = m_off + n;
    if (!f.fired && f.at < end && f.at >= m_off) {
      std::size_t k = static_cast<std::size_t>(f.at - m_off);
      switch (f.kind) {
      case Kind::Corrupt: {
        f.fired = true;
        std::string copy(p, n);
        copy[k] = static_cast<char>(copy[k] ^ 0x01);
        m_off = end;
        return send_all(m_dst, copy) ? Pumped::Ok : Pumped::DstFailed;
      }
      case Kind::Stall:
        f.fired = true;
        if (!send_all(m_dst, p, k))
          return Pumped::DstFailed;
        std::this_thread::sleep_for(std::chrono::duration<double>(f.seconds));
        m_off = end;
        return send_all(m_dst, p + k, n - k) ? Pumped::Ok : Pumped::DstFailed;
      case Kind::ResetResponse:
      case Kind::ResetRequest:
      case Kind::Truncate:
        f.fired = true;
        m_off += k;
        return send_all(m_dst, p, k) ? Pumped::Cut : Pumped::DstFailed;
      default:
        break;
      }
    }
    m_off = end;
    return send_all(m_dst, p, n) ? Pumped::Ok : Pumped::DstFailed;
  }

  Reader& m_src;
  int m_dst;
  Fault& m_fault;
  std::uint64_t m_off = 0;
};

// ------------------------------------------------------------------ connection

const char* reason_phrase(int code) {
  switch (code) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 408: return "Request Timeout";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Injected";
  }
}

std::string synthetic_response(int code, long retry_after, bool head_only, bool close, const std::string& header = "") {
  std::string body = "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"fault_proxy: injected " +
                     std::to_string(code) + "\"}]}\n";
  if (code == 502)
    body = "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"fault_proxy: upstream unreachable\"}]}\n";
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason_phrase(code) + "\r\n";
  r += "Content-Type: application/json\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (retry_after >= 0)
    r += "Retry-After: " + std::to_string(retry_after) + "\r\n";
  if (!header.empty())
    r += header + "\r\n";
  if (close)
    r += "Connection: close\r\n";
  r += "\r\n";
  if (!head_only)
    r += body;
  return r;
}

bool body_framing(const Head& h, Framing& framing, std::uint64_t& length) {
  length = 0;
  if (h.has_token("transfer-encoding", "chunked")) {
    framing = Framing::Chunked;
    return true;
  }
  if (h.has("content-length")) {
    std::uint64_t v;
    if (!parse_u64(h.get("content-length"), v))
      return false;
    framing = Framing::Length;
    length = v;
    return true;
  }
  framing = Framing::None;
  return true;
}

int status_of(const std::string& status_line) {
  // HTTP/1.1 200 OK
  auto sp = status_line.find(' ');
  if (sp == std::string::npos)
    return 0;
  return std::atoi(status_line.c_str() + sp + 1);
}

std::string with_note(const Applied& a, const Fault& f) {
  if (a.kind == Kind::None)
    return "-";
  if (f.kind != Kind::None && !f.fired)
    return a.action + "(not-reached)";
  return a.action;
}

class Connection {
public:
  explicit Connection(int fd) { m_client.fd = fd; }
  ~Connection() {
    close_plain(m_client.fd);
    close_plain(m_up.fd);
  }

  void serve() {
    while (m_client.fd >= 0) {
      if (!one_exchange())
        break;
    }
  }

private:
  Reader m_client;
  Reader m_up;

  void end_graceful() {
    close_graceful(m_client.fd);
    close_plain(m_up.fd);
  }

  /// Forwards one request and its response; false when the connection is over.
  bool one_exchange() {
    if (m_client.avail() == 0 && !m_client.fill())
      return false;
    const unsigned char first = static_cast<unsigned char>(*m_client.data());
    if (first < 'A' || first > 'Z') {
      // Not HTTP/1.1 (a TLS ClientHello from a client probing https first): refuse at once
      // like Go's net/http does, instead of waiting for a request head that never comes.
      send_all(m_client.fd, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n");
      log_line(now_epoch(), "?", "?", "400", first == 0x16 ? "tls-refused" : "bad-request");
      end_graceful();
      return false;
    }
    bool got_any = false;
    auto raw = m_client.read_head(got_any);
    if (!raw)
      return false;
    const double t0 = now_epoch();
    InFlight counted;
    auto req = parse_head(*raw);
    std::string method, target, version;
    if (req) {
      std::istringstream fl(req->first);
      fl >> method >> target >> version;
    }
    if (!req || method.empty() || target.empty()) {
      send_all(m_client.fd, synthetic_response(400, -1, false, true));
      log_line(t0, "?", "?", "400", "bad-request");
      end_graceful();
      return false;
    }
    Framing req_framing;
    std::uint64_t req_length;
    if (!body_framing(*req, req_framing, req_length)) {
      send_all(m_client.fd, synthetic_response(400, -1, false, true));
      log_line(t0, method, target, "400", "bad-request");
      end_graceful();
      return false;
    }
    const bool has_body = req_framing == Framing::Chunked || (req_framing == Framing::Length && req_length > 0);
    const bool expect100 = req->has_token("expect", "100-continue");
    bool client_close = req->has_token("connection", "close") ||
                        (version == "HTTP/1.0" && !req->has_token("connection", "keep-alive"));
    const bool head_req = method == "HEAD";

    Applied a = pick_rule(method, target);
    if (g_busy_above > 0 && counted.now > g_busy_above) {
      a = Applied{};
      a.kind = Kind::Status;
      a.status = 429;
      a.action = "busy-above";
    }

    // ---- answered by the proxy itself
    if (a.kind == Kind::Status) {
      bool keep = !client_close;
      if (has_body) {
        if (expect100) {
          keep = false; // the client waits for 100 Continue: do not take the body
        } else {
          Fault none;
          Pump drain(m_client, -1, none);
          if (drain.run(req_framing, req_length) != Pumped::Ok) {
            log_line(t0, method, target, "-", a.action + " client-closed");
            return false;
          }
        }
      }
      bool ok = send_all(m_client.fd, synthetic_response(a.status, a.retry_after, head_req, !keep, a.header));
      log_line(t0, method, target, std::to_string(a.status), a.action);
      if (!ok || !keep) {
        end_graceful();
        return false;
      }
      return true;
    }

    // ---- forward the request head
    if (a.kind == Kind::Delay)
      std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
    if (a.kind == Kind::DropHeader)
      *raw = edit_header(*raw, a.header, [](const std::string&) { return std::optional<std::string>(); });
    if (a.kind == Kind::ShiftRange)
      *raw = edit_header(*raw, "range", [&a](const std::string& v) { return std::optional(shifted_range(v, a.bytes)); });
    if (m_up.fd >= 0 && is_stale(m_up.fd))
      close_plain(m_up.fd);
    bool sent = false;
    for (int attempt = 0; attempt < 2 && !sent; ++attempt) {
      if (m_up.fd < 0) {
        m_up = Reader{};
        m_up.fd = connect_upstream();
        if (m_up.fd < 0)
          break;
      }
      sent = send_all(m_up.fd, *raw);
      if (!sent)
        close_plain(m_up.fd);
    }
    if (!sent) {
      send_all(m_client.fd, synthetic_response(502, -1, head_req, true));
      log_line(t0, method, target, "502", "upstream-unreachable");
      end_graceful();
      return false;
    }

    // ---- Expect: 100-continue: wait for the upstream's verdict or the client's body
    if (has_body && expect100) {
      pollfd p[2] = {{m_client.fd, POLLIN, 0}, {m_up.fd, POLLIN, 0}};
      bool upstream_first = false;
      if (m_client.avail() == 0) {
        int r;
        do
          r = ::poll(p, 2, 120000);
        while (r < 0 && errno == EINTR);
        upstream_first = r > 0 && p[1].revents != 0 && p[0].revents == 0;
      }
      if (upstream_first) {
        // The upstream spoke first: an interim 100 or an early final answer.
        bool any = false;
        auto rh = m_up.read_head(any);
        if (!rh) {
          send_all(m_client.fd, synthetic_response(502, -1, head_req, true));
          log_line(t0, method, target, "502", "upstream-closed");
          end_graceful();
          return false;
        }
        int code = status_of(*rh);
        if (code >= 100 && code < 200 && code != 101) {
          if (!send_all(m_client.fd, *rh))
            return false;
        } else {
          // Final answer without the body: relay it, then drop both connections.
          Fault f;
          relay_response(t0, method, target, *rh, head_req, a, f);
          end_graceful();
          return false;
        }
      }
    }

    // ---- the request body
    Fault req_fault;
    if (a.kind == Kind::ResetRequest)
      req_fault = Fault{Kind::ResetRequest, a.bytes, 0, false};
    if (has_body) {
      Pump pump(m_client, m_up.fd, req_fault);
      Pumped st = pump.run(req_framing, req_length);
      if (st == Pumped::Cut) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        close_reset(m_up.fd);
        close_reset(m_client.fd);
        log_line(t0, method, target, "-", a.action);
        return false;
      }
      if (st == Pumped::SrcClosed) {
        close_reset(m_up.fd);
        log_line(t0, method, target, "-", "client-closed");
        return false;
      }
      if (st == Pumped::DstFailed) {
        // The upstream stopped reading: relay its answer if it sent one.
        bool any = false;
        auto rh = m_up.read_head(any);
        if (rh) {
          Fault f;
          relay_response(t0, method, target, *rh, head_req, a, f);
        } else {
          send_all(m_client.fd, synthetic_response(502, -1, head_req, true));
          log_line(t0, method, target, "502", "upstream-closed");
        }
        end_graceful();
        return false;
      }
    }

    // ---- the response (interim 1xx first)
    for (;;) {
      bool any = false;
      auto rh = m_up.read_head(any);
      if (!rh) {
        send_all(m_client.fd, synthetic_response(502, -1, head_req, true));
        log_line(t0, method, target, "502", "upstream-closed");
        end_graceful();
        return false;
      }
      int code = status_of(*rh);
      if (code >= 100 && code < 200 && code != 101) {
        if (!send_all(m_client.fd, *rh))
          return false;
        continue;
      }
      Fault resp_fault;
      Applied shown = a;
      if (a.kind == Kind::ResetResponse || a.kind == Kind::Truncate || a.kind == Kind::Stall ||
          a.kind == Kind::Corrupt)
        resp_fault = Fault{a.kind, a.bytes, a.seconds, false};
      if (a.kind == Kind::ResetRequest)
        shown.action += "(not-reached)"; // the request body was shorter than BYTES
      bool keep = relay_response(t0, method, target, *rh, head_req, shown, resp_fault);
      if (!keep || client_close) {
        if (m_client.fd >= 0)
          end_graceful();
        return false;
      }
      return true;
    }
  }

  /// Relays one final response whose head is `raw`; false when the connection must end
  /// (a fault cut it, it is framed by close, or someone asked for close).
  bool relay_response(double t0, const std::string& method, const std::string& target, const std::string& raw,
                      bool head_req, const Applied& a, Fault& fault) {
    auto resp = parse_head(raw);
    int code = resp ? status_of(resp->first) : 0;
    if (!resp || code == 0) {
      send_all(m_client.fd, synthetic_response(502, -1, head_req, true));
      log_line(t0, method, target, "502", "upstream-garbage");
      end_graceful();
      return false;
    }
    Framing framing = Framing::None;
    std::uint64_t length = 0;
    if (head_req || code == 204 || code == 304 || (code >= 100 && code < 200)) {
      framing = Framing::None;
    } else if (!body_framing(*resp, framing, length)) {
      framing = Framing::UntilClose;
    } else if (framing == Framing::None) {
      framing = Framing::UntilClose;
    }
    const std::string status = std::to_string(code);
    if (!send_all(m_client.fd, rewrite_location(raw))) {
      log_line(t0, method, target, status, "client-closed");
      close_plain(m_client.fd);
      return false;
    }
    Pump pump(m_up, m_client.fd, fault);
    Pumped st = pump.run(framing, length);
    switch (st) {
    case Pumped::Cut:
      log_line(t0, method, target, status, a.action);
      if (fault.kind == Kind::Truncate) {
        close_graceful(m_client.fd);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        close_reset(m_client.fd);
      }
      close_reset(m_up.fd);
      return false;
    case Pumped::SrcClosed:
      // The upstream went away mid-body: the client must not take it for complete.
      log_line(t0, method, target, status, with_note(a, fault) == "-" ? "upstream-closed" : with_note(a, fault) + " upstream-closed");
      close_reset(m_client.fd);
      close_plain(m_up.fd);
      return false;
    case Pumped::DstFailed:
      log_line(t0, method, target, status, "client-closed");
      close_plain(m_client.fd);
      close_reset(m_up.fd);
      return false;
    case Pumped::Ok:
      break;
    }
    log_line(t0, method, target, status, with_note(a, fault));
    if (framing == Framing::UntilClose || resp->has_token("connection", "close")) {
      close_plain(m_up.fd);
      return false;
    }
    return true;
  }
};

void on_signal(int) { ::_exit(0); }

void usage() {
  std::fprintf(stderr, "usage: fault_proxy --upstream HOST:PORT [--port P] [--port-file FILE] [--rules FILE] "
                       "[--log FILE] [--max-in-flight FILE] [--busy-above N]\n");
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  std::string upstream, port_file, log_path;
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage();
      return argv[++i];
    };
    if (a == "--upstream")
      upstream = value();
    else if (a == "--port")
      port = std::atoi(value().c_str());
    else if (a == "--port-file")
      port_file = value();
    else if (a == "--rules")
      g_rules_path = value();
    else if (a == "--log")
      log_path = value();
    else if (a == "--max-in-flight")
      g_in_flight_path = value();
    else if (a == "--busy-above")
      g_busy_above = std::atoi(value().c_str());
    else if (a == "-h" || a == "--help")
      usage();
    else {
      std::fprintf(stderr, "fault_proxy: unknown argument %s\n", a.c_str());
      usage();
    }
  }
  auto colon = upstream.rfind(':');
  if (upstream.empty() || colon == std::string::npos)
    usage();
  g_upstream_host = upstream.substr(0, colon);
  g_upstream_port = std::atoi(upstream.c_str() + colon + 1);
  if (g_upstream_port <= 0 || g_upstream_port > 65535)
    usage();

  if (!log_path.empty()) {
    g_log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_log_fd < 0) {
      std::perror(("fault_proxy: " + log_path).c_str());
      return 1;
    }
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) {
    std::perror("fault_proxy: socket");
    return 1;
  }
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 256) != 0) {
    std::perror("fault_proxy: bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  g_proxy_port = ntohs(addr.sin_port);

  {
    std::lock_guard lock(g_rules_mutex);
    reload_rules_locked();
  }

  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream f(tmp);
      f << g_proxy_port << "\n";
    }
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      std::perror("fault_proxy: port file");
      return 1;
    }
  }
  note("listening on 127.0.0.1:" + std::to_string(g_proxy_port) + ", upstream " + upstream);

  for (;;) {
    int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      std::perror("fault_proxy: accept");
      return 1;
    }
    set_nodelay(cfd);
    std::thread([cfd] {
      Connection c(cfd);
      c.serve();
    }).detach();
  }
}
