// Bindings for cpu/optim.h: in-place updates of one parameter and its state arrays.
#include "bindings/arrays.h"
#include "cpu/optim.h"

namespace fastnn::bind {

namespace {

// The parameter, its gradient and each state array: same dtype and shape, distinct memory.
ArrayArg state_like(const char* op, const char* name, py::object obj, const ArrayArg& param,
                    Access access) {
  ArrayArg a = float_array(op, name, obj, -1, access);
  require_same_dtype(op, param, a);
  require_dims(op, a, param.dims, "(the parameter's shape)");
  require_no_overlap(op, param, a);
  return a;
}

void sgd_step(py::object p_obj, py::object g_obj, py::object buf_obj, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first_step) {
  const char* op = "sgd_step";
  ArrayArg p = float_array(op, "param", p_obj, -1, Access::write);
  ArrayArg g = state_like(op, "grad", g_obj, p, Access::read);
  ArrayArg buf;
  if (momentum != 0.0) {
    if (buf_obj.is_none())
      throw_value_error("fastnn.", op, ": argument 'momentum_buffer' is required when momentum != 0");
    buf = state_like(op, "momentum_buffer", buf_obj, p, Access::write);
    require_no_overlap(op, buf, g);
  }
  const SgdConfig cfg{lr, momentum, dampening, weight_decay, nesterov, first_step};
  dispatch_float(p.dtype, [&](auto zero) {
    using T = decltype(zero);
    T* pp = p.data<T>();
    const T* pg = g.data<T>();
    T* pb = buf ? buf.data<T>() : nullptr;
    py::gil_scoped_release release;
    cpu::sgd_step<T>(pp, pg, pb, p.numel, cfg);
  });
}

void adam_step(py::object p_obj, py::object g_obj, py::object m_obj, py::object v_obj,
               int64_t step, double lr, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled_weight_decay) {
  const char* op = decoupled_weight_decay ? "adamw_step" : "adam_step";
  ArrayArg p = float_array(op, "param", p_obj, -1, Access::write);
  ArrayArg g = state_like(op, "grad", g_obj, p, Access::read);
  ArrayArg m = state_like(op, "exp_avg", m_obj, p, Access::write);
  ArrayArg v = state_like(op, "exp_avg_sq", v_obj, p, Access::write);
  require_no_overlap(op, m, v);
  require_no_overlap(op, m, g);
  require_no_overlap(op, v, g);
  if (step < 1) throw_value_error("fastnn.", op, ": argument 'step' must be >= 1; got ", step);
  const AdamConfig cfg{lr, beta1, beta2, eps, weight_decay, step, decoupled_weight_decay};
  dispatch_float(p.dtype, [&](auto zero) {
    using T = decltype(zero);
    T* pp = p.data<T>();
    const T* pg = g.data<T>();
    T* pm = m.data<T>();
    T* pv = v.data<T>();
    py::gil_scoped_release release;
    cpu::adam_step<T>(pp, pg, pm, pv, p.numel, cfg);
  });
}

// Lists of parameters: one kernel call per item, so the checks and messages are the
// single-parameter ones (with the item's index added). The CUDA backend updates the whole list
// in one launch.
void require_same_length(const char* op, const char* name, const py::handle& list, size_t n) {
  if (py::len(list) != n)
    throw_value_error("fastnn.", op, ": argument '", name, "' must have one array per parameter (", n,
                      "); got ", py::len(list));
}

void sgd_step_multi(py::sequence params, py::sequence grads, py::object buffers, double lr,
                    double momentum, double dampening, double weight_decay, bool nesterov,
                    bool first_step) {
  const size_t n = params.size();
  require_same_length("sgd_step", "grads", grads, n);
  if (!buffers.is_none()) require_same_length("sgd_step", "momentum_buffers", buffers, n);
  for (size_t i = 0; i < n; ++i) {
    for_item(i, n, [&] {
      sgd_step(params[i], grads[i], buffers.is_none() ? py::object(py::none()) : py::object(buffers[py::int_(i)]),
               lr, momentum, dampening, weight_decay, nesterov, first_step);
    });
  }
}

void adam_step_multi(py::sequence params, py::sequence grads, py::sequence exp_avgs,
                     py::sequence exp_avg_sqs, int64_t step, double lr, double beta1, double beta2,
                     double eps, double weight_decay, bool decoupled_weight_decay) {
  const char* op = decoupled_weight_decay ? "adamw_step" : "adam_step";
  const size_t n = params.size();
  require_same_length(op, "grads", grads, n);
  require_same_length(op, "exp_avgs", exp_avgs, n);
  require_same_length(op, "exp_avg_sqs", exp_avg_sqs, n);
  for (size_t i = 0; i < n; ++i) {
    for_item(i, n, [&] {
      adam_step(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], step, lr, beta1, beta2, eps,
                weight_decay, decoupled_weight_decay);
    });
  }
}

}  // namespace

void init_optim(py::module_& m) {
  m.def("sgd_step", &sgd_step, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"),
        py::arg("lr"), py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
        py::arg("weight_decay") = 0.0, py::arg("nesterov") = false,
        py::arg("first_step") = false);
  m.def("adam_step", &adam_step, py::arg("param"), py::arg("grad"), py::arg("exp_avg"),
        py::arg("exp_avg_sq"), py::arg("step"), py::arg("lr"), py::arg("beta1") = 0.9,
        py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
        py::arg("decoupled_weight_decay") = false);
  m.def("sgd_step_multi", &sgd_step_multi, py::arg("params"), py::arg("grads"),
        py::arg("momentum_buffers"), py::arg("lr"), py::arg("momentum") = 0.0,
        py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0, py::arg("nesterov") = false,
        py::arg("first_step") = false);
  m.def("adam_step_multi", &adam_step_multi, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("step"), py::arg("lr"), py::arg("beta1") = 0.9,
        py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
        py::arg("decoupled_weight_decay") = false);
}

}  // namespace fastnn::bind
