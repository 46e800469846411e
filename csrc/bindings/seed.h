// The seed argument of the random ops (dropout), read the same way by the CPU and CUDA bindings.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "common/errors.h"

namespace fastnn::bind {

namespace py = pybind11;

// Any Python or NumPy integer in [0, 2**64); TypeError / ValueError naming the op otherwise.
inline uint64_t seed_arg(const char* op, const py::handle& obj) {
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw_type_error("fastnn.", op, ": argument 'seed' must be an int; got ",
                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  py::int_ value = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
  if (!value) throw py::error_already_set();
  const unsigned long long seed = PyLong_AsUnsignedLongLong(value.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    throw_value_error("fastnn.", op, ": argument 'seed' must lie in [0, 2**64); got ",
                      py::str(value).cast<std::string>());
  }
  return static_cast<uint64_t>(seed);
}

}  // namespace fastnn::bind
