// Which array library and kernels this compilation of the bindings serves.
//
// Every op-family file in csrc/bindings/ is compiled twice: into fastnn._cpu, where Backend is
// the NumPy policy and `kernels` is fastnn::cpu, and (with FASTNN_BIND_CUDA defined) into
// fastnn._cuda, where Backend is the CuPy policy and `kernels` is fastnn::cuda. The kernels of
// the two namespaces have the same names and signatures (each ends with an Exec), so one call
// `kernels::gemm<T>(..., context.exec())` reaches either.
//
// A policy provides:
//   take(op, arg, obj, kind, ndim, access, what) -> Array   check and convert an argument
//   empty(op, name, dtype, dims) -> Array                    a new array (contents arbitrary)
//   zero(array, context)                                     fill with zeros
//   read<T>(array, index) -> T                               one element, on the host
//   Context { exec() }                                       what one op call runs with
//   host_memory                                              kernels' data readable here?
// host_memory is the one difference the op files branch on: on the CPU, data-dependent checks
// (labels, targets, pooling indices) run on the host before the kernel; on the GPU the kernel
// flags the first bad entry and the binding raises the same error after it.
#pragma once

#if defined(FASTNN_BIND_CUDA)
#include "bindings/cuda/cupy_backend.h"
#include "cuda/kernels.h"
namespace fastnn::bind {
using Backend = CupyBackend;
namespace kernels = ::fastnn::cuda;
}  // namespace fastnn::bind
#else
#include "bindings/cpu/numpy_backend.h"
#include "cpu/kernels.h"
namespace fastnn::bind {
using Backend = NumpyBackend;
namespace kernels = ::fastnn::cpu;
}  // namespace fastnn::bind
#endif

#include "bindings/arguments.h"
