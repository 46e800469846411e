// A bounded cache of freed output buffers, so that a training step's arrays reuse the memory of
// the previous step's instead of page-faulting fresh memory in.
//
// Why: every layer allocates its outputs and gradients each step. glibc serves those sizes
// from the heap or from mmap and returns memory to the system when the heap top or an mmapped
// block is freed, so the next step touches new pages: about 500 page faults (1 ms, a tenth of
// the step) per LeNet-5 step at batch 128, and RSS swinging from step to step. Training
// allocates the same sizes every step, so a freed buffer of the same byte size serves the next
// request exactly.
//
// Buffers are 64-byte aligned, hold exactly the requested bytes (no rounding up: a buffer is
// reused only by a request of its own size, so nothing is wasted), and carry their size in a
// header, so the owner of an array's memory (a capsule) needs only the pointer to give it back.
// The cache holds at most kCachedBytesCap bytes: a buffer given back to a full cache evicts the
// least recently given back ones.
// new_array (arrays.h) uses it for outputs of at least kMinCachedBytes; smaller ones come from
// NumPy as before (malloc serves them from its heap without faulting). Results never depend on
// it: kernels write every element of their outputs.
// Thread-safe (one mutex); never destroyed, so arrays freed during interpreter shutdown are safe.
#pragma once

#include <cstddef>

namespace fastnn::bind {

struct BufferCacheStats {
  std::size_t cached_bytes = 0, cached_buffers = 0, hits = 0, misses = 0;
};

// Memory for `bytes` bytes (64-byte aligned): a cached buffer of exactly that size, or a new
// one. Never null (throws std::bad_alloc).
void* take_buffer(std::size_t bytes);
// Returns a buffer from take_buffer: cached for reuse (evicting the least recently used
// buffers when the cache would exceed its cap), or freed when larger than the cap.
void give_back_buffer(void* data);
// Frees every cached buffer.
void free_cached_buffers();
BufferCacheStats buffer_cache_stats();

constexpr std::size_t kMinCachedBytes = std::size_t{64} << 10;
constexpr std::size_t kCachedBytesCap = std::size_t{256} << 20;

}  // namespace fastnn::bind
