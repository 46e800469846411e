// The fastnn._cuda extension module: every op family's CUDA bindings, the TypeError translation,
// and what Python needs to know about the build and the machine (devices, driver, archs).
//
// Importing it needs no GPU and no driver: the CUDA runtime is linked statically and loads the
// driver lazily, so on a machine without one, device_count() is 0 and driver_error() says why.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bindings_cuda/device_arrays.h"

namespace fastnn::bind {
void init_gemm(py::module_& m);
void init_linear(py::module_& m);
void init_activation(py::module_& m);
void init_softmax_xent(py::module_& m);
void init_bce_logits(py::module_& m);
void init_optim(py::module_& m);
void init_conv2d(py::module_& m);
void init_pool2d(py::module_& m);
void init_batchnorm(py::module_& m);
void init_dropout(py::module_& m);
}  // namespace fastnn::bind

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

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastnn CUDA kernels (CuPy arrays in and out). Use fastnn.ops; this module is internal.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastnn::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
  m.def("probe_devices", &probe_devices);
  m.def("device_properties", &device_properties, py::arg("device"));
  m.def("build_info", &build_info);
  fastnn::bind::init_gemm(m);
  fastnn::bind::init_linear(m);
  fastnn::bind::init_activation(m);
  fastnn::bind::init_softmax_xent(m);
  fastnn::bind::init_bce_logits(m);
  fastnn::bind::init_optim(m);
  fastnn::bind::init_conv2d(m);
  fastnn::bind::init_pool2d(m);
  fastnn::bind::init_batchnorm(m);
  fastnn::bind::init_dropout(m);
}
