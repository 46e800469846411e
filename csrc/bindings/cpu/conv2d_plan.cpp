// fastnn._cpu._conv2d_plan: the methods cpu/conv2d.cpp takes for given arguments, so the tests
// can cover every path (CPU only: the CUDA backend has one method per pass).
#include <pybind11/stl.h>

#include "bindings/backend.h"
#include "bindings/conv2d_args.h"

namespace fastnn::bind {

namespace {

// {"forward": ..., "input_grad": ..., "weight_grad": ...}
py::dict conv2d_plan(py::object x_obj, py::object w_obj, Pair stride, Pair padding,
                     Pair dilation, int64_t groups) {
  const char* op = "conv2d_plan";
  const Conv2dInputs in =
      conv2d_inputs(op, x_obj, w_obj, conv2d_params(stride, padding, dilation, groups));
  cpu::Conv2dPlan plan;
  dispatch_float(in.x.dtype, [&](auto zero) { plan = cpu::conv2d_plan<decltype(zero)>(in.shape); });
  py::dict d;
  d["forward"] = plan.forward;
  d["input_grad"] = plan.input_grad;
  d["weight_grad"] = plan.weight_grad;
  return d;
}

}  // namespace

void init_conv2d_plan(py::module_& m) {
  m.def("_conv2d_plan", &conv2d_plan, py::arg("x"), py::arg("weight"),
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Pair{0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1);
}

}  // namespace fastnn::bind
