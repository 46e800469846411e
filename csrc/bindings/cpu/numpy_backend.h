// The NumPy policy of the bindings (bindings/backend.h), compiled into fastnn._cpu only.
//
// Arguments are NumPy arrays, used in place (never copied: a strided or misaligned array is
// refused, naming numpy.ascontiguousarray). New arrays of at least kMinCachedBytes take their
// memory from the buffer cache (bindings/cpu/buffer_cache.h), so a training step reuses the
// previous step's memory. Kernels run on the calling thread's OpenMP team: Exec is empty.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bindings/array.h"
#include "cpu/exec.h"

namespace fastnn::bind {

struct NumpyBackend {
  static constexpr bool host_memory = true;

  class Context {
   public:
    const cpu::Exec& exec() const { return exec_; }

   private:
    cpu::Exec exec_;
  };

  static Array take(const char* op, const char* arg, const py::handle& obj, Kind kind, int ndim,
                    Access access, const char* what);
  static Array empty(const char* op, const char* name, Dtype dtype,
                     const std::vector<int64_t>& dims);
  static void zero(const Array& a, const Context&) {
    std::fill_n(a.data<unsigned char>(), a.nbytes(), static_cast<unsigned char>(0));
  }
  template <class T>
  static T read(const Array& a, int64_t index) {
    return a.data<T>()[index];
  }
};

}  // namespace fastnn::bind
