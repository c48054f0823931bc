#pragma once
// Many manifest HEADs in flight together from one thread: the two requests that decide whether an
// image needs anything at all, for thousands of images (a re-sync is nothing else). One libcurl
// multi handle (http::Client::stream) drives them: no thread per request, no waiting on each.

#include "http/client.hpp"
#include "registry/client.hpp"
#include "registry/store.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>

namespace registry {

class HeadBatch {
public:
  /// Up to `parallel` HEADs in flight at once, and for each registry no more than its limiter's
  /// window of checks allows (registry::Limiter).
  HeadBatch(http::Client& client, std::size_t parallel);

  /// Queues the HEAD of repository:reference in `store`, under the caller's `id` (unique among those
  /// queued or in flight). With `expected` (a digest) a tag's HEAD is conditional (If-None-Match):
  /// a registry whose tag is at that digest answers 304 without reading the manifest. `first` puts
  /// it ahead of those queued. False when it cannot go in a batch (a layout, a registry with caps,
  /// a bad name, no token in hand: it must not wait on a token server): ask the store itself.
  bool add(std::uint64_t id, ImageStore& store, const std::string& repository, const std::string& reference,
           const std::string& expected = {}, bool first = false);

  /// Sends what is queued, calling `on_answer(id, answer)` for each in this thread, until `more`
  /// returns false while nothing is queued. `more(idle)` is called whenever the queue is empty (idle:
  /// nothing in flight either, so it may wait for work); it adds HEADs with add(), and so may
  /// on_answer (an image's second HEAD).
  void run(const std::function<bool(bool idle)>& more,
           const std::function<void(std::uint64_t id, HeadAnswer answer)>& on_answer);

private:
  struct Asked {
    Registry* registry;
    http::Request request;
    Limiter::Slot slot; ///< its place under the registry's window of checks, while in flight
  };
  /// The next queued HEAD whose registry has a free place (looking at the first few only), else
  /// nullopt; when `idle`, waits for the first one's place instead.
  std::optional<http::Client::Streamed> next_ready(bool idle);
  http::Client& m_client;
  std::size_t m_parallel;
  std::deque<http::Client::Streamed> m_queue;
  std::map<std::uint64_t, Asked> m_asked;
};

} // namespace registry
