// The CuPy policy of the bindings (bindings/backend.h), compiled into fastnn._cuda only.
//
// Arguments are anything exporting __cuda_array_interface__ on the current device (CuPy
// arrays), used in place. New arrays and kernels' scratch memory come from CuPy's memory pool
// (cupy.empty), and kernels run on CuPy's current stream: a Context holds both for one op call.
// Create a Context while holding the GIL and let it die holding the GIL; exec() may be used
// with the GIL released.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/array.h"
#include "cuda/launch.h"

namespace fastnn::bind {

struct CupyBackend {
  static constexpr bool host_memory = false;

  class Context final : public cuda::Workspace {
   public:
    Context();
    ~Context() override;
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    const cuda::Exec& exec() const { return exec_; }
    void* allocate(size_t bytes) override;  // takes the GIL for the allocation

   private:
    cuda::Exec exec_;
    std::vector<py::object> blocks_;
  };

  static Array take(const char* op, const char* arg, const py::handle& obj, Kind kind, int ndim,
                    Access access, const char* what);
  static Array empty(const char* op, const char* name, Dtype dtype,
                     const std::vector<int64_t>& dims);
  static void zero(const Array& a, const Context& context);
  // Copies one element to the host (error paths: naming a bad label, target or index); waits
  // for the stream.
  template <class T>
  static T read(const Array& a, int64_t index);
};

}  // namespace fastnn::bind
