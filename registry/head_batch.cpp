#include "registry/head_batch.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace registry {

HeadBatch::HeadBatch(http::Client& client, std::size_t parallel)
    : m_client(client), m_parallel(std::max<std::size_t>(1, parallel)) {}

bool HeadBatch::add(std::uint64_t id, ImageStore& store, const std::string& repository, const std::string& reference,
                    const std::string& expected, bool first) {
  // Only a registry's HEADs can be streamed; what decides whether one can is Registry's to say.
  auto* registry = dynamic_cast<Registry*>(&store);
  if (!registry)
    return false;
  auto request = registry->head_request(repository, reference, expected);
  if (!request)
    return false;
  m_asked.insert_or_assign(id, Asked{registry, *request, {}});
  http::Client::Streamed item{id, std::move(*request)};
  if (first)
    m_queue.push_front(std::move(item));
  else
    m_queue.push_back(std::move(item));
  return true;
}

std::optional<http::Client::Streamed> HeadBatch::next_ready(bool idle) {
  // A registry whose window is full holds back only its own HEADs; the scan is bounded, so that a
  // long queue of one throttled registry costs little per call.
  constexpr std::size_t scan = 64;
  auto take_one = [&](bool stopping_too) -> std::optional<http::Client::Streamed> {
    std::size_t looked = 0;
    for (auto it = m_queue.begin(); it != m_queue.end() && looked < scan; ++it, ++looked) {
      Asked& asked = m_asked.at(it->id);
      // A run that is stopping sends it without a place (a HEAD settles faster than a wait); the
      // capped registries' own requests never come through here.
      const bool go = stopping_too && asked.registry->stopped();
      if (!go) {
        auto slot = asked.registry->try_check_slot();
        if (!slot)
          continue;
        asked.slot = std::move(*slot);
        asked.slot.timed();
      }
      auto item = std::move(*it);
      m_queue.erase(it);
      return item;
    }
    return std::nullopt;
  };
  if (auto item = take_one(false); item || !idle)
    return item; // nullopt while not idle: an answer will free a place
  // Nothing of ours in flight: other threads hold the places. Look again until one registry has
  // one (any of them: one throttled registry must not hold back the others' HEADs).
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (auto item = take_one(true))
      return item;
  }
}

void HeadBatch::run(const std::function<bool(bool idle)>& more,
                    const std::function<void(std::uint64_t id, HeadAnswer answer)>& on_answer) {
  m_client.stream(
      [&](bool idle) -> std::optional<http::Client::Streamed> {
        while (m_queue.empty())
          if (!more(idle))
            return std::nullopt;
        return next_ready(idle);
      },
      [&](std::uint64_t id, http::Result<http::Response> response) {
        auto it = m_asked.find(id);
        if (it == m_asked.end())
          return;
        Asked asked = std::move(it->second);
        m_asked.erase(it);
        Registry::learn(asked.slot, response);
        asked.slot = Limiter::Slot(); // its place is free before the answer brings more HEADs
        on_answer(id, asked.registry->read_head(asked.request, response));
      },
      m_parallel);
}

} // namespace registry
