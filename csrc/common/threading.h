// The thread count every kernel uses for its OpenMP regions.
//
// It is a process-wide setting (not OpenMP's per-thread ICV) so that kernels called from any
// Python thread see the same value; each parallel region names it explicitly with
// num_threads(). Reductions split work by a fixed rule, so results depend only on this count.
#pragma once

#include <cstdint>

namespace fastnn {

int get_num_threads();
// n >= 1; raises ValueError otherwise.
void set_num_threads(int n);
// Threads worth using for `work` units when each thread should get at least `grain` of them:
// 1 for small tensors. The default suits one-pass element-wise kernels: 128K elements (about
// 50 us of streaming) per thread. Waking a team costs a few microseconds on an idle machine,
// but on a loaded one a region waits for its slowest thread to be scheduled (milliseconds),
// so a smaller grain made small layers (an MLP's biases and activations) tens of times slower
// on 2 threads than on 1.
int threads_for(int64_t work, int64_t grain = int64_t{1} << 17);

}  // namespace fastnn
