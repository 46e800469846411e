// The output buffer cache; see buffer_cache.h.
#include "bindings/cpu/buffer_cache.h"

#include <algorithm>
#include <cstdlib>
#include <list>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace fastnn::bind {
namespace {

// The header in front of every buffer: its size. 64 bytes keep the data 64-byte aligned.
constexpr std::size_t kHeader = 64;

std::size_t size_of(void* data) {
  return *reinterpret_cast<std::size_t*>(static_cast<char*>(data) - kHeader);
}

void* allocate(std::size_t bytes) {
  // aligned_alloc needs a multiple of the alignment; the rounding is unused padding.
  const std::size_t total = (kHeader + bytes + 63) / 64 * 64;
  void* block = std::aligned_alloc(64, total);
  if (!block) throw std::bad_alloc();
  *static_cast<std::size_t*>(block) = bytes;
  return static_cast<char*>(block) + kHeader;
}

void release(void* data) { std::free(static_cast<char*>(data) - kHeader); }

// Cached buffers in the order they were given back (least recently used first), and by size
// for take_buffer.
struct Cache {
  struct Entry {
    std::size_t bytes;
    void* data;
  };
  std::mutex mutex;
  std::list<Entry> by_age;
  std::unordered_map<std::size_t, std::vector<std::list<Entry>::iterator>> by_size;
  BufferCacheStats stats;

  // Removes one cached buffer (by_age position `it`) from the cache and returns its memory.
  void* remove(std::list<Entry>::iterator it) {
    std::vector<std::list<Entry>::iterator>& same_size = by_size[it->bytes];
    same_size.erase(std::find(same_size.begin(), same_size.end(), it));
    void* data = it->data;
    stats.cached_bytes -= it->bytes;
    stats.cached_buffers -= 1;
    by_age.erase(it);
    return data;
  }
};

Cache& cache() {
  static Cache* instance = new Cache;  // never destroyed: see buffer_cache.h
  return *instance;
}

}  // namespace

void* take_buffer(std::size_t bytes) {
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.by_size.find(bytes);
    if (it != c.by_size.end() && !it->second.empty()) {
      c.stats.hits += 1;
      return c.remove(it->second.back());  // the most recently given back: warmest in cache
    }
    c.stats.misses += 1;
  }
  return allocate(bytes);
}

void give_back_buffer(void* data) {
  const std::size_t bytes = size_of(data);
  std::vector<void*> evicted;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (bytes <= kCachedBytesCap) {
      // The least recently used buffers make room: sizes no longer requested (an evaluation's
      // batch size, say) age out instead of keeping the current sizes from being cached.
      while (c.stats.cached_bytes + bytes > kCachedBytesCap)
        evicted.push_back(c.remove(c.by_age.begin()));
      c.by_size[bytes].push_back(c.by_age.insert(c.by_age.end(), {bytes, data}));
      c.stats.cached_bytes += bytes;
      c.stats.cached_buffers += 1;
      data = nullptr;
    }
  }
  for (void* old : evicted) release(old);
  if (data) release(data);
}

void free_cached_buffers() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (const Cache::Entry& e : c.by_age) release(e.data);
  c.by_age.clear();
  c.by_size.clear();
  c.stats.cached_bytes = c.stats.cached_buffers = 0;
}

BufferCacheStats buffer_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

}  // namespace fastnn::bind
