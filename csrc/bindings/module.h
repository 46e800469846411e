// What a backend module calls to register the ops shared by both backends (bindings/module.cpp).
#pragma once

#include <pybind11/pybind11.h>

namespace fastnn::bind {

namespace py = pybind11;

// Every op family's bindings, compiled for this module's backend (bindings/backend.h), and the
// translation of fastnn::TypeError into Python's TypeError.
void init_ops(py::module_& m);

}  // namespace fastnn::bind
