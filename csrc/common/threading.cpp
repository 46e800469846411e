#include "common/threading.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/errors.h"

namespace fastnn {
namespace {

int default_threads() {
  // Respect OMP_NUM_THREADS when set, as users of any OpenMP library expect.
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> n{default_threads()};
  return n;
}

}  // namespace

int get_num_threads() {
#ifdef _OPENMP
  return thread_setting().load(std::memory_order_relaxed);
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  if (n < 1) throw_value_error("fastnn.set_num_threads: argument 'n' must be >= 1; got ", n);
  thread_setting().store(n, std::memory_order_relaxed);
}

int threads_for(int64_t work, int64_t grain) {
  int64_t useful = grain > 0 ? work / grain : work;
  int64_t n = std::min<int64_t>(get_num_threads(), std::max<int64_t>(1, useful));
  return static_cast<int>(n);
}

}  // namespace fastnn
