// FASTNN_HOST_DEVICE marks small inline functions that both the CPU kernels (plain C++) and the
// CUDA kernels call, so the two backends share one definition (and host tests can check it).
#pragma once

#if defined(__CUDACC__)
#define FASTNN_HOST_DEVICE __host__ __device__
#else
#define FASTNN_HOST_DEVICE
#endif
