#pragma once
// The tasks of a run and their results, by index (the order they arrived). Each task's slot is its
// own allocation, so a worker keeps its pointer while more tasks arrive; a task whose final result
// went to a sink is let go when it ended well, so a run holds what may run again, not the catalogue.

#include "migrate/results.hpp"
#include "migrate/rules.hpp"

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>

namespace migrate {

class TaskSlots {
public:
  struct Slot {
    ImageTask task;
    ImageResult result;
    bool final = false; ///< its result went to the sinks as the last one
  };

  /// Adds a task; returns its index.
  std::size_t add(ImageTask task) {
    auto slot = std::make_unique<Slot>();
    slot->task = std::move(task);
    std::lock_guard lock(m_mutex);
    m_slots.push_back(std::move(slot));
    return m_slots.size() - 1;
  }
  /// Task i's slot; null once released.
  Slot* at(std::size_t i) {
    std::lock_guard lock(m_mutex);
    return m_slots[i].get();
  }
  /// Lets task i go (its result is no longer needed).
  void release(std::size_t i) {
    std::unique_ptr<Slot> gone;
    std::lock_guard lock(m_mutex);
    gone.swap(m_slots[i]);
  }
  std::size_t size() {
    std::lock_guard lock(m_mutex);
    return m_slots.size();
  }

private:
  std::mutex m_mutex;
  std::deque<std::unique_ptr<Slot>> m_slots;
};

} // namespace migrate
