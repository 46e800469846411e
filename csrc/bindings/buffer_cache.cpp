// The output buffer cache; see buffer_cache.h.
#include "bindings/buffer_cache.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
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

struct Cache {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free_by_size;
  BufferCacheStats stats;
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
    auto it = c.free_by_size.find(bytes);
    if (it != c.free_by_size.end() && !it->second.empty()) {
      void* data = it->second.back();
      it->second.pop_back();
      c.stats.cached_bytes -= bytes;
      c.stats.cached_buffers -= 1;
      c.stats.hits += 1;
      return data;
    }
    c.stats.misses += 1;
  }
  return allocate(bytes);
}

void give_back_buffer(void* data) {
  const std::size_t bytes = size_of(data);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.stats.cached_bytes + bytes <= kCachedBytesCap) {
      c.free_by_size[bytes].push_back(data);
      c.stats.cached_bytes += bytes;
      c.stats.cached_buffers += 1;
      return;
    }
  }
  release(data);
}

void free_cached_buffers() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [bytes, buffers] : c.free_by_size)
    for (void* data : buffers) release(data);
  c.free_by_size.clear();
  c.stats.cached_bytes = c.stats.cached_buffers = 0;
}

BufferCacheStats buffer_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

}  // namespace fastnn::bind
