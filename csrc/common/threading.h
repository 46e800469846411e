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
// Threads worth using for `work` units of roughly `grain` cost each: 1 for small tensors, so
// tiny ops don't pay for waking a team.
int threads_for(int64_t work, int64_t grain = 32768);

}  // namespace fastnn
