// Where a CPU kernel runs. The CPU kernels split their work over fastnn's OpenMP thread count
// (common/threading.h) and need nothing else, so Exec carries nothing. It exists so that a kernel
// in fastnn::cpu and its twin in fastnn::cuda (whose Exec holds the stream and the scratch
// allocator, cuda/launch.h) take the same arguments, and one binding calls either
// (bindings/backend.h).
#pragma once

namespace fastnn::cpu {

struct Exec {};

}  // namespace fastnn::cpu
