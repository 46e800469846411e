// Argument checking and conversion for the CUDA bindings: CuPy arrays (anything exporting
// __cuda_array_interface__) in, CuPy arrays out.
//
// A binding turns each argument into a DeviceArray here (type, dtype, rank, contiguity,
// alignment, writability and device, with the CPU bindings' messages: bindings/checks.h), builds
// the op's shape struct, allocates outputs with cupy.empty, opens an OpContext (CuPy's current
// stream plus scratch memory from CuPy's pool), releases the GIL and calls the kernel launcher.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/checks.h"
#include "common/errors.h"
#include "common/sizes.h"
#include "cuda/launch.h"

namespace fastnn::bind {

namespace py = pybind11;

struct DeviceArray {
  py::object object;  // keeps the memory alive for the call
  Dtype dtype = Dtype::float32;
  std::vector<int64_t> dims;
  int64_t numel = 0;
  const char* name = "";
  bool present = false;  // false for an optional argument given as None
  uintptr_t address = 0;

  explicit operator bool() const { return present; }
  template <class T>
  T* data() const {
    return reinterpret_cast<T*>(address);
  }
  int64_t ndim() const { return static_cast<int64_t>(dims.size()); }
  int64_t nbytes() const { return numel * dtype_size(dtype); }
};

// A float32/float64 CuPy array on the current device, C-contiguous and aligned; `ndim` < 0
// accepts any rank. Raises TypeError / ValueError naming `op` and `arg`.
DeviceArray device_float_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1,
                               Access access = Access::read);
DeviceArray optional_device_float_array(const char* op, const char* arg, const py::handle& obj,
                                        int ndim = -1, Access access = Access::read);
// Class labels: a 1-D int32/int64 CuPy array.
DeviceArray device_label_array(const char* op, const char* arg, const py::handle& obj);
// Integer indices (int32/int64) of any rank (`ndim` < 0) or a given rank.
DeviceArray device_index_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1);
// A uint8 array (e.g. a dropout mask).
DeviceArray device_byte_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1);

void require_same_dtype(const char* op, const DeviceArray& a, const DeviceArray& b);
void require_dims(const char* op, const DeviceArray& b, const std::vector<int64_t>& dims,
                  const char* why);
void require_no_overlap(const char* op, const DeviceArray& out, const DeviceArray& in);

// A new C-contiguous CuPy array (cupy.empty) on the current device; sizes checked first.
DeviceArray new_device_array(const char* op, const char* name, Dtype dtype,
                             const std::vector<int64_t>& dims);

// Copies one element of a device array to the host (error paths: naming a bad label or target).
template <class T>
T read_element(const DeviceArray& a, int64_t index);

// What one op call runs with: CuPy's current stream, and scratch memory from CuPy's pool (each
// block a uint8 CuPy array kept alive until the OpContext goes away). Create it while holding the
// GIL and let it die holding the GIL; exec() may be used with the GIL released.
class OpContext final : public cuda::Workspace {
 public:
  OpContext();
  ~OpContext() override;
  OpContext(const OpContext&) = delete;
  OpContext& operator=(const OpContext&) = delete;

  const cuda::Exec& exec() const { return exec_; }
  void* allocate(size_t bytes) override;  // takes the GIL for the allocation

 private:
  cuda::Exec exec_;
  std::vector<py::object> blocks_;
};

}  // namespace fastnn::bind
