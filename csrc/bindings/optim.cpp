// Bindings of the fused optimiser updates (cpu/optim.h, cuda/optim.h): SGD / Adam / AdamW on one
// parameter, or on a list of them in one kernel call per dtype (the GPU updates a whole list in
// one multi-tensor launch; float32 and float64 parameters may be mixed in a list).
//
// Every list item gets the single-parameter checks; a list's messages name the _multi op and say
// which item was wrong (" (item i of n)"), a single parameter's do not.
#include <vector>

#include "bindings/backend.h"
#include "common/shapes/optim.h"

namespace fastnn::bind {

namespace {

// One parameter's arrays after their checks; state arrays absent when not used.
struct Item {
  Array param, grad, state0, state1;
};

// The parameter, its gradient and each state array: same dtype and shape, distinct memory.
Array state_like(const char* op, const char* name, const py::handle& obj, const Array& param,
                 Access access) {
  Array a = float_array(op, name, obj, -1, access);
  require_same_dtype(op, param, a);
  require_dims(op, a, param.dims, "(the parameter's shape)");
  require_no_overlap(op, param, a);
  return a;
}

void require_one_per_param(const char* op, const char* name, const py::handle& list, size_t n) {
  if (py::len(list) != n)
    throw_value_error("fastnn.", op, ": argument '", name, "' must have one array per parameter (",
                      n, "); got ", py::len(list));
}

// check(i, item) for each of n items, naming the item in a list's messages.
template <class Check>
std::vector<Item> checked_items(size_t n, bool single, Check check) {
  std::vector<Item> items(n);
  for (size_t i = 0; i < n; ++i) {
    if (single) check(i, items[i]);
    else for_item(static_cast<int64_t>(i), static_cast<int64_t>(n), [&] { check(i, items[i]); });
  }
  return items;
}

// update(tensors) once per dtype present, with the items of that dtype.
template <class Update>
void for_each_dtype(const std::vector<Item>& items, Update update) {
  for (const Dtype dtype : {Dtype::float32, Dtype::float64}) {
    dispatch_float(dtype, [&](auto zero) {
      using T = decltype(zero);
      std::vector<OptimTensor<T>> tensors;
      for (const Item& it : items)
        if (it.param.dtype == dtype)
          tensors.push_back({it.param.data<T>(), it.grad.data<T>(), data_or_null<T>(it.state0),
                             data_or_null<T>(it.state1), it.param.numel});
      if (!tensors.empty()) update(tensors);
    });
  }
}

void sgd_update(const py::sequence& params, const py::sequence& grads, const py::object& buffers,
                double lr, double momentum, double dampening, double weight_decay, bool nesterov,
                bool first_step, bool single) {
  const char* op = single ? "sgd_step" : "sgd_step_multi";
  const size_t n = params.size();
  require_one_per_param(op, "grads", grads, n);
  const bool use_momentum = momentum != 0.0;
  if (use_momentum && !buffers.is_none()) require_one_per_param(op, "momentum_buffers", buffers, n);
  const std::vector<Item> items = checked_items(n, single, [&](size_t i, Item& it) {
    it.param = float_array(op, "param", params[i], -1, Access::write);
    it.grad = state_like(op, "grad", grads[i], it.param, Access::read);
    if (!use_momentum) return;
    const py::object buffer = buffers.is_none() ? py::none() : py::object(buffers[py::int_(i)]);
    if (buffer.is_none())
      throw_value_error("fastnn.", op, ": argument 'momentum_buffer' is required when momentum != 0");
    it.state0 = state_like(op, "momentum_buffer", buffer, it.param, Access::write);
    require_no_overlap(op, it.state0, it.grad);
  });
  const SgdConfig cfg{lr, momentum, dampening, weight_decay, nesterov, first_step};
  const Backend::Context context;
  for_each_dtype(items, [&](const auto& tensors) {
    using T = std::remove_pointer_t<decltype(tensors[0].param)>;
    py::gil_scoped_release release;
    kernels::sgd_step<T>(tensors, cfg, context.exec());
  });
}

void adam_update(const py::sequence& params, const py::sequence& grads,
                 const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs, int64_t step,
                 double lr, double beta1, double beta2, double eps, double weight_decay,
                 bool decoupled_weight_decay, bool single) {
  const char* op = decoupled_weight_decay ? (single ? "adamw_step" : "adamw_step_multi")
                                         : (single ? "adam_step" : "adam_step_multi");
  const size_t n = params.size();
  require_one_per_param(op, "grads", grads, n);
  require_one_per_param(op, "exp_avgs", exp_avgs, n);
  require_one_per_param(op, "exp_avg_sqs", exp_avg_sqs, n);
  const std::vector<Item> items = checked_items(n, single, [&](size_t i, Item& it) {
    it.param = float_array(op, "param", params[i], -1, Access::write);
    it.grad = state_like(op, "grad", grads[i], it.param, Access::read);
    it.state0 = state_like(op, "exp_avg", exp_avgs[i], it.param, Access::write);
    it.state1 = state_like(op, "exp_avg_sq", exp_avg_sqs[i], it.param, Access::write);
    require_no_overlap(op, it.state0, it.state1);
    require_no_overlap(op, it.state0, it.grad);
    require_no_overlap(op, it.state1, it.grad);
  });
  if (step < 1) throw_value_error("fastnn.", op, ": argument 'step' must be >= 1; got ", step);
  const AdamConfig cfg{lr, beta1, beta2, eps, weight_decay, step, decoupled_weight_decay};
  const Backend::Context context;
  for_each_dtype(items, [&](const auto& tensors) {
    using T = std::remove_pointer_t<decltype(tensors[0].param)>;
    py::gil_scoped_release release;
    kernels::adam_step<T>(tensors, cfg, context.exec());
  });
}

void sgd_step(py::object p, py::object g, py::object buffer, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first_step) {
  sgd_update(py::make_tuple(p), py::make_tuple(g),
             buffer.is_none() ? py::object(py::none()) : py::object(py::make_tuple(buffer)), lr,
             momentum, dampening, weight_decay, nesterov, first_step, /*single=*/true);
}

void sgd_step_multi(py::sequence params, py::sequence grads, py::object buffers, double lr,
                    double momentum, double dampening, double weight_decay, bool nesterov,
                    bool first_step) {
  sgd_update(params, grads, buffers, lr, momentum, dampening, weight_decay, nesterov, first_step,
             /*single=*/false);
}

void adam_step(py::object p, py::object g, py::object m, py::object v, int64_t step, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
  adam_update(py::make_tuple(p), py::make_tuple(g), py::make_tuple(m), py::make_tuple(v), step, lr,
              beta1, beta2, eps, weight_decay, decoupled, /*single=*/true);
}

void adam_step_multi(py::sequence params, py::sequence grads, py::sequence exp_avgs,
                     py::sequence exp_avg_sqs, int64_t step, double lr, double beta1, double beta2,
                     double eps, double weight_decay, bool decoupled_weight_decay) {
  adam_update(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps, weight_decay,
              decoupled_weight_decay, /*single=*/false);
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
  m.def("adam_step_multi", &adam_step_multi, py::arg("params"), py::arg("grads"),
        py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("step"), py::arg("lr"),
        py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8,
        py::arg("weight_decay") = 0.0, py::arg("decoupled_weight_decay") = false);
}

}  // namespace fastnn::bind
