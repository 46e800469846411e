// Runs the CUDA kernels' own code on the host, so CI without a GPU executes whole launches of the
// real kernel templates (operand loaders, tiled main loop, epilogues, grid-stride loops) and can
// compare their outputs with direct loops. Include this before any csrc/cuda header.
//
// Model: a launch runs its blocks one after another; inside a block every thread is a fiber (own
// stack, switched by hand; see switch_context) that runs until it reaches a barrier. __syncthreads() waits for every live thread
// of the block, a warp shuffle for every live lane of its warp (exchanged through a per-warp
// mailbox), so barrier-ordered shared memory and butterfly reductions behave as on the GPU.
// Fibers never preempt each other, which makes atomics trivially atomic. __shared__ becomes
// `static`: blocks run one at a time, so one copy per kernel instantiation is enough.
// A barrier that some live threads can never reach (a divergent __syncthreads) aborts the run
// instead of hanging.
//
// FASTNN_LAUNCH (cuda/launch.h) becomes emu::launch, so the .cu files themselves compile as host
// C++ (g++ -x c++ -include emulate.h) and their launchers run synchronously on the host, with
// device memory being host memory; runtime.cpp supplies the CUDA runtime calls they make.
// FASTNN_HOST_EMULATION tells gemm_tf32.cu to use the emulated PTX below.
#pragma once

#include <cuda_runtime.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

namespace emu {

inline uint3 thread_idx, block_idx;
inline dim3 block_dim, grid_dim;

enum class State { ready, at_block_barrier, at_warp_barrier, done };

// Switching fibers. On x86-64 a minimal switch (callee-saved registers and the stack pointer):
// glibc's swapcontext also saves the signal mask with a system call per switch, and kernels with
// warp shuffles switch dozens of times per thread (conv2d_kernels ran 6x longer on swapcontext).
// Elsewhere (other CPUs, non-ELF assemblers), or with FASTNN_EMULATE_UCONTEXT defined, ucontext.
// (The minimal switch does not follow a CET shadow stack: tests/test_cuda_index_maps.py builds
// with -fcf-protection=none, so the programs never run with one.)
#if defined(__x86_64__) && defined(__ELF__) && !defined(FASTNN_EMULATE_UCONTEXT)
extern "C" void fastnn_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .weak fastnn_emu_switch
  .type fastnn_emu_switch, @function
fastnn_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size fastnn_emu_switch, .-fastnn_emu_switch
)");
struct Context {
  void* sp = nullptr;
};
// A context that starts entry() on the given stack (entry must never return).
inline void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  const uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top - 64);  // six registers, entry as the return address
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  sp[6] = reinterpret_cast<void*>(entry);  // entered with rsp = top - 8, as after a call
  sp[7] = nullptr;
  c.sp = sp;
}
inline void switch_context(Context& from, Context& to) { fastnn_emu_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
inline void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

struct Fiber {
  Context context;
  std::unique_ptr<char[]> stack;  // uninitialised: only the pages a thread touches get mapped
  State state = State::ready;
};

struct Block {
  Context scheduler;
  std::vector<Fiber> fibers;
  int current = 0;
  std::function<void()> body;
  std::vector<unsigned char> mailbox;  // 8 bytes per thread: the values a shuffle exchanges
  std::vector<uint32_t> mma_box;       // 6 words per thread: the fragments mma.sync exchanges
};

inline Block& block() {
  static Block b;
  return b;
}

inline void set_thread(int t) {
  const unsigned x = block_dim.x, y = block_dim.y;
  thread_idx = {unsigned(t) % x, (unsigned(t) / x) % y, unsigned(t) / (x * y)};
}

inline void yield(State why) {
  Block& b = block();
  b.fibers[b.current].state = why;
  switch_context(b.fibers[b.current].context, b.scheduler);
}

[[noreturn]] inline void fiber_main() {
  Block& b = block();
  b.body();
  b.fibers[b.current].state = State::done;
  switch_context(b.fibers[b.current].context, b.scheduler);
  std::abort();  // a finished fiber is never resumed
}

// Releases a barrier once every live thread it concerns has reached it; false when nothing can
// move (a deadlock) and threads remain.
inline bool release_barriers() {
  Block& b = block();
  const int n = static_cast<int>(b.fibers.size());
  bool any_live = false, released = false;
  for (const Fiber& f : b.fibers) any_live |= f.state != State::done;
  if (!any_live) return true;
  bool all_at_block = true;
  for (const Fiber& f : b.fibers)
    if (f.state != State::done && f.state != State::at_block_barrier) all_at_block = false;
  if (all_at_block) {
    for (Fiber& f : b.fibers)
      if (f.state == State::at_block_barrier) f.state = State::ready;
    return true;
  }
  for (int w = 0; w < n; w += 32) {
    bool all_at_warp = true, some = false;
    for (int t = w; t < std::min(n, w + 32); ++t) {
      if (b.fibers[t].state == State::done) continue;
      some = true;
      if (b.fibers[t].state != State::at_warp_barrier) all_at_warp = false;
    }
    if (some && all_at_warp) {
      for (int t = w; t < std::min(n, w + 32); ++t)
        if (b.fibers[t].state == State::at_warp_barrier) b.fibers[t].state = State::ready;
      released = true;
    }
  }
  return released;
}

// Runs kernel(args...) over grid x block, as `kernel<<<grid, block>>>(args...)` would.
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 threads, Kernel kernel, Args... args) {
  constexpr size_t kStack = 128 * 1024;
  Block& b = block();
  const int n = static_cast<int>(threads.x * threads.y * threads.z);
  b.fibers.resize(n);
  b.mailbox.assign(static_cast<size_t>(n) * 8, 0);
  b.body = [&] { kernel(args...); };
  grid_dim = grid, block_dim = threads;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        block_idx = {x, y, z};
        for (int t = 0; t < n; ++t) {
          Fiber& f = b.fibers[t];
          if (!f.stack) f.stack.reset(new char[kStack]);
          make_context(f.context, f.stack.get(), kStack, fiber_main);
          f.state = State::ready;
        }
        for (;;) {
          bool ran = false;
          for (int t = 0; t < n; ++t) {
            if (b.fibers[t].state != State::ready) continue;
            b.current = t;
            set_thread(t);
            switch_context(b.scheduler, b.fibers[t].context);
            ran = true;
          }
          bool live = false;
          for (const Fiber& f : b.fibers) live |= f.state != State::done;
          if (!live) break;
          if (!release_barriers() && !ran) {
            std::fprintf(stderr, "emulated kernel deadlocked at a barrier (block %u,%u,%u)\n", x, y, z);
            std::abort();
          }
        }
      }
}

// The lane-exchange behind the warp shuffles: publish, wait for the warp, read, wait again (so
// no lane overwrites its slot before every lane has read it).
template <class T>
T shuffle_xor(T v, int lane_mask) {
  static_assert(sizeof(T) <= 8, "shuffled values are at most 8 bytes");
  Block& b = block();
  const int self = b.current, lane = self % 32, partner = (self - lane) + (lane ^ lane_mask);
  std::memcpy(&b.mailbox[static_cast<size_t>(self) * 8], &v, sizeof(T));
  yield(State::at_warp_barrier);
  T out = v;
  if (partner < static_cast<int>(b.fibers.size())) std::memcpy(&out, &b.mailbox[static_cast<size_t>(partner) * 8], sizeof(T));
  yield(State::at_warp_barrier);
  return out;
}

// The launch's dynamic shared memory (extern __shared__), filled with 0x7f bytes at each launch:
// a kernel reading it before writing it sees huge values, not zeros.
inline std::vector<double>& dynamic_shared_memory() {
  static std::vector<double> memory;
  return memory;
}
template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(dynamic_shared_memory().data());
}

template <class Kernel>
struct Launcher {
  dim3 grid, threads;
  size_t shared_bytes;
  Kernel kernel;
  template <class... Args>
  void operator()(Args... args) const {
    std::vector<double>& shared = dynamic_shared_memory();
    shared.assign((shared_bytes + 7) / 8, 0.0);
    std::memset(shared.data(), 0x7f, shared.size() * sizeof(double));
    launch(grid, threads, kernel, args...);
  }
};
template <class Kernel>
Launcher<Kernel> launcher(dim3 grid, dim3 threads, size_t shared_bytes, Kernel kernel) {
  return {grid, threads, shared_bytes, kernel};
}

// The PTX that gemm_tf32.cu uses, with its semantics on the emulated GPU.

// cp.async.cg 16 bytes, src_bytes of them read and the rest zero. Synchronous here: the copy has
// landed when the wait that follows it returns, as on the GPU.
inline void cp_async_16(void* dst, const void* src, int src_bytes) {
  std::memset(dst, 0, 16);
  if (src_bytes > 0) std::memcpy(dst, src, static_cast<size_t>(src_bytes));
}

// cvt.rna.tf32.f32: keep 10 mantissa bits, rounding to nearest with ties away from zero (finite
// inputs; the low 13 bits of the result are zero).
inline uint32_t to_tf32(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return (bits + 0x1000u) & 0xffffe000u;
}

inline float value_of_tf32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, D = A (16 x 8) B (8 x 8) + D, called by all
// 32 lanes of a warp with the fragments of the PTX ISA (g = lane / 4, q = lane % 4):
//   A: a0 = (g, q)  a1 = (g + 8, q)  a2 = (g, q + 4)  a3 = (g + 8, q + 4)
//   B: b0 = (k = q, n = g)  b1 = (k = q + 4, n = g)
//   D: d0 = (g, 2q)  d1 = (g, 2q + 1)  d2 = (g + 8, 2q)  d3 = (g + 8, 2q + 1)
// Each lane publishes its fragments, the warp meets, each lane computes its four results from
// everyone's (products of TF32 values are exact in float32; sums in k order), the warp meets.
inline void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Block& blk = block();
  const int self = blk.current, lane = self % 32, warp0 = self - lane;
  if (blk.mma_box.size() < blk.fibers.size() * 6) blk.mma_box.resize(blk.fibers.size() * 6);
  for (int i = 0; i < 4; ++i) blk.mma_box[self * 6 + i] = a[i];
  for (int i = 0; i < 2; ++i) blk.mma_box[self * 6 + 4 + i] = b[i];
  yield(State::at_warp_barrier);
  auto a_at = [&](int row, int k) {  // held by lane (row % 8) * 4 + k % 4
    return value_of_tf32(blk.mma_box[(warp0 + (row % 8) * 4 + k % 4) * 6 + (row >= 8) + 2 * (k >= 4)]);
  };
  auto b_at = [&](int k, int n) {  // held by lane n * 4 + k % 4
    return value_of_tf32(blk.mma_box[(warp0 + n * 4 + k % 4) * 6 + 4 + (k >= 4)]);
  };
  const int g = lane / 4, q = lane % 4;
  for (int r = 0; r < 4; ++r) {
    const int row = g + (r / 2) * 8, col = 2 * q + r % 2;
    float sum = d[r];
    for (int k = 0; k < 8; ++k) sum += a_at(row, k) * b_at(k, col);
    d[r] = sum;
  }
  yield(State::at_warp_barrier);
}

// The device cudaGetDevice reports (runtime.cpp): 0, one multiprocessor (small products split,
// grid-stride loops wrap), or 1, 132 multiprocessors like an H100 (the launchers' choices for a
// full-size GPU). Launchers cache device facts per device, so switching is safe.
inline int current_device = 0;

}  // namespace emu

#define FASTNN_HOST_EMULATION 1
// (the stream is evaluated and dropped: every emulated launch runs to completion at once)
#define FASTNN_LAUNCH(grid, block, shared_bytes, stream, ...) \
  emu::launcher(((void)(stream), (grid)), (block), (shared_bytes), __VA_ARGS__)

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)
#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim
#define __syncthreads() emu::yield(emu::State::at_block_barrier)
#define __shfl_xor_sync(mask, v, lane_mask) emu::shuffle_xor((v), (lane_mask))

// cuda_runtime.h declares this C++ overload for nvcc only.
template <class Function>
cudaError_t cudaFuncSetAttribute(Function* entry, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

template <class T>
T atomicMin(T* address, T value) {
  const T old = *address;
  if (value < old) *address = value;
  return old;
}
template <class T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
using std::max;
using std::min;
