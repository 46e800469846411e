// The fastnn._cuda extension module: the ops shared with fastnn._cpu (bindings/module.cpp, over
// the CuPy policy), and what only the GPU has: devices, driver, architectures and the matmul
// precision.
//
// Importing it needs no GPU and no driver: the CUDA runtime is linked statically and loads the
// driver lazily, so on a machine without one, device_count() is 0 and driver_error() says why.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/module.h"
#include "common/errors.h"
#include "cuda/gemm.h"
#include "cuda/launch.h"

namespace {

namespace py = pybind11;

// (count, error): the number of visible GPUs, or 0 and the runtime's reason (no driver, driver
// too old for this runtime, no device...).
py::tuple probe_devices() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return py::make_tuple(0, std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status));
  }
  return py::make_tuple(count, py::none());
}

py::dict device_properties(int device) {
  cudaDeviceProp prop{};
  fastnn::cuda::check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  py::dict d;
  d["index"] = device;
  d["name"] = std::string(prop.name);
  d["compute_capability"] = py::make_tuple(prop.major, prop.minor);
  d["total_memory"] = static_cast<long long>(prop.totalGlobalMem);
  d["multiprocessors"] = prop.multiProcessorCount;
  return d;
}

py::dict build_info() {
  py::dict info;
  info["architectures"] = FASTNN_CUDA_ARCHS;
  info["nvcc"] = FASTNN_NVCC_VERSION;
  info["runtime"] = CUDART_VERSION;  // linked statically: the version compiled in
  int driver = 0;
  info["driver"] = cudaDriverGetVersion(&driver) == cudaSuccess ? py::int_(driver) : py::int_(0);
  return info;
}

void set_matmul_precision(const std::string& precision) {
  namespace cuda = fastnn::cuda;
  if (precision == "highest") cuda::set_matmul_precision(cuda::MatmulPrecision::highest);
  else if (precision == "high") cuda::set_matmul_precision(cuda::MatmulPrecision::high);
  else
    fastnn::throw_value_error(
        "fastnn.set_matmul_precision: argument 'precision' must be 'highest' or 'high'; got '",
        precision, "'");
}

std::string get_matmul_precision() {
  namespace cuda = fastnn::cuda;
  return cuda::matmul_precision() == cuda::MatmulPrecision::high ? "high" : "highest";
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastnn CUDA kernels (CuPy arrays in and out). Use fastnn.ops; this module is internal.";
  fastnn::bind::init_ops(m);
  m.def("probe_devices", &probe_devices);
  m.def("device_properties", &device_properties, py::arg("device"));
  m.def("build_info", &build_info);
  m.def("set_matmul_precision", &set_matmul_precision, py::arg("precision"));
  m.def("get_matmul_precision", &get_matmul_precision);
}
