// The fastnn._cpu extension module: the ops shared with fastnn._cuda (bindings/module.cpp, over
// the NumPy policy), and what only the CPU has: threading controls, build facts, the buffer
// cache, the FMA peak and the conv2d plan query.
#include <pybind11/pybind11.h>

#include "bindings/cpu/buffer_cache.h"
#include "bindings/module.h"
#include "common/cpu_features.h"
#include "common/threading.h"
#include "cpu/gemm_kernel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastnn::bind {
void init_peak(py::module_& m);
void init_conv2d_plan(py::module_& m);
}  // namespace fastnn::bind

namespace {

// Register tiles and cache blocks of the GEMM in use: tests put shapes on and off each boundary.
template <class T>
pybind11::dict gemm_blocking(const fastnn::cpu::GemmKernelInfo<T>& k) {
  pybind11::dict d;
  d["mr"] = k.wide.mr, d["nr"] = k.wide.nr;
  d["short_mr"] = pybind11::make_tuple(k.wide.shorter[0].mr, k.wide.shorter[1].mr);
  d["narrow_mr"] = k.narrow.mr, d["narrow_nr"] = k.narrow.nr;
  d["mc"] = k.mc, d["kc"] = k.kc, d["nc"] = k.nc;
  return d;
}

pybind11::dict build_info() {
  namespace py = pybind11;
  py::dict info;
  info["compiler"] = FASTNN_COMPILER;
  info["build_type"] = FASTNN_BUILD_TYPE;
#ifdef _OPENMP
  info["openmp"] = _OPENMP;
#else
  info["openmp"] = py::none();
#endif
  info["simd_detected"] = fastnn::simd_level_name(fastnn::detected_simd_level());
  info["simd"] = fastnn::simd_level_name(fastnn::active_simd_level());
  info["gemm_kernel_float32"] = fastnn::cpu::gemm_kernel_info<float>().name;
  info["gemm_kernel_float64"] = fastnn::cpu::gemm_kernel_info<double>().name;
  info["gemm_blocking_float32"] = gemm_blocking(fastnn::cpu::gemm_kernel_info<float>());
  info["gemm_blocking_float64"] = gemm_blocking(fastnn::cpu::gemm_kernel_info<double>());
  return info;
}

pybind11::dict buffer_cache_info() {
  const fastnn::bind::BufferCacheStats s = fastnn::bind::buffer_cache_stats();
  pybind11::dict d;
  d["cached_bytes"] = s.cached_bytes, d["cached_buffers"] = s.cached_buffers;
  d["hits"] = s.hits, d["misses"] = s.misses;
  d["cap_bytes"] = fastnn::bind::kCachedBytesCap, d["min_bytes"] = fastnn::bind::kMinCachedBytes;
  return d;
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  namespace py = pybind11;
  m.doc() = "fastnn CPU kernels (C++, OpenMP, SIMD). Use fastnn.ops; this module is internal.";
  fastnn::bind::init_ops(m);
  m.def("get_num_threads", &fastnn::get_num_threads);
  m.def("set_num_threads", &fastnn::set_num_threads, py::arg("n"));
  m.def("build_info", &build_info);
  m.def("buffer_cache_info", &buffer_cache_info);
  m.def("free_cached_buffers", &fastnn::bind::free_cached_buffers);
  fastnn::bind::init_peak(m);
  fastnn::bind::init_conv2d_plan(m);
}
