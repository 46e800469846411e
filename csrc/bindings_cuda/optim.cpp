// CUDA bindings for cuda/optim.h: in-place SGD / Adam / AdamW updates of one parameter or, in one
// multi-tensor launch, of a list of them (the checks of bindings/optim.cpp, per list item).
#include <vector>

#include "bindings_cuda/device_arrays.h"
#include "cuda/optim.h"

namespace fastnn::bind {

namespace {

// The parameter, its gradient and each state array: same dtype and shape, distinct memory.
DeviceArray state_like(const char* op, const char* name, const py::handle& obj, const DeviceArray& param,
                       Access access) {
  DeviceArray a = device_float_array(op, name, obj, -1, access);
  require_same_dtype(op, param, a);
  require_dims(op, a, param.dims, "(the parameter's shape)");
  require_no_overlap(op, param, a);
  return a;
}

// One parameter's arrays after their checks; state arrays absent when not used.
struct Item {
  DeviceArray param, grad, state0, state1;
};

std::vector<Item> sgd_items(const char* op, const py::sequence& params, const py::sequence& grads,
                            const py::object& buffers, bool momentum) {
  const int64_t n = static_cast<int64_t>(params.size());
  if (static_cast<int64_t>(grads.size()) != n)
    throw_value_error("fastnn.", op, ": argument 'grads' must have one array per parameter (", n, "); got ",
                      grads.size());
  if (momentum && buffers.is_none())
    throw_value_error("fastnn.", op, ": argument 'momentum_buffer' is required when momentum != 0");
  if (momentum && static_cast<int64_t>(py::len(buffers)) != n)
    throw_value_error("fastnn.", op, ": argument 'momentum_buffers' must have one array per parameter (", n,
                      "); got ", py::len(buffers));
  std::vector<Item> items(n);
  for (int64_t i = 0; i < n; ++i) {
    for_item(i, n, [&] {
      Item& it = items[i];
      it.param = device_float_array(op, "param", params[i], -1, Access::write);
      if (i > 0) require_same_dtype(op, items[0].param, it.param);
      it.grad = state_like(op, "grad", grads[i], it.param, Access::read);
      if (momentum) {
        const py::object buffer = buffers[py::int_(i)];
        if (buffer.is_none())
          throw_value_error("fastnn.", op, ": argument 'momentum_buffer' is required when momentum != 0");
        it.state0 = state_like(op, "momentum_buffer", buffer, it.param, Access::write);
        require_no_overlap(op, it.state0, it.grad);
      }
    });
  }
  return items;
}

std::vector<Item> adam_items(const char* op, const py::sequence& params, const py::sequence& grads,
                             const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs) {
  const int64_t n = static_cast<int64_t>(params.size());
  for (const auto& [name, list] : {std::pair<const char*, const py::sequence*>{"grads", &grads},
                                   {"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}}) {
    if (static_cast<int64_t>(list->size()) != n)
      throw_value_error("fastnn.", op, ": argument '", name, "' must have one array per parameter (", n,
                        "); got ", list->size());
  }
  std::vector<Item> items(n);
  for (int64_t i = 0; i < n; ++i) {
    for_item(i, n, [&] {
      Item& it = items[i];
      it.param = device_float_array(op, "param", params[i], -1, Access::write);
      if (i > 0) require_same_dtype(op, items[0].param, it.param);
      it.grad = state_like(op, "grad", grads[i], it.param, Access::read);
      it.state0 = state_like(op, "exp_avg", exp_avgs[i], it.param, Access::write);
      it.state1 = state_like(op, "exp_avg_sq", exp_avg_sqs[i], it.param, Access::write);
      require_no_overlap(op, it.state0, it.state1);
      require_no_overlap(op, it.state0, it.grad);
      require_no_overlap(op, it.state1, it.grad);
    });
  }
  return items;
}

template <class T>
std::vector<cuda::OptimTensor<T>> tensors_of(const std::vector<Item>& items) {
  std::vector<cuda::OptimTensor<T>> tensors;
  tensors.reserve(items.size());
  for (const Item& it : items)
    tensors.push_back({it.param.data<T>(), it.grad.data<T>(), it.state0 ? it.state0.data<T>() : nullptr,
                       it.state1 ? it.state1.data<T>() : nullptr, it.param.numel});
  return tensors;
}

void sgd_step_multi(py::sequence params, py::sequence grads, py::object buffers, double lr,
                    double momentum, double dampening, double weight_decay, bool nesterov,
                    bool first_step) {
  const char* op = "sgd_step";
  const std::vector<Item> items = sgd_items(op, params, grads, buffers, momentum != 0.0);
  if (items.empty()) return;
  const SgdConfig cfg{lr, momentum, dampening, weight_decay, nesterov, first_step};
  const OpContext context;
  dispatch_float(items[0].param.dtype, [&](auto zero) {
    using T = decltype(zero);
    const auto tensors = tensors_of<T>(items);
    py::gil_scoped_release release;
    cuda::sgd_step<T>(tensors, cfg, context.exec());
  });
}

void adam_step_multi(py::sequence params, py::sequence grads, py::sequence exp_avgs,
                     py::sequence exp_avg_sqs, int64_t step, double lr, double beta1, double beta2,
                     double eps, double weight_decay, bool decoupled_weight_decay) {
  const char* op = decoupled_weight_decay ? "adamw_step" : "adam_step";
  if (step < 1) throw_value_error("fastnn.", op, ": argument 'step' must be >= 1; got ", step);
  const std::vector<Item> items = adam_items(op, params, grads, exp_avgs, exp_avg_sqs);
  if (items.empty()) return;
  const AdamConfig cfg{lr, beta1, beta2, eps, weight_decay, step, decoupled_weight_decay};
  const OpContext context;
  dispatch_float(items[0].param.dtype, [&](auto zero) {
    using T = decltype(zero);
    const auto tensors = tensors_of<T>(items);
    py::gil_scoped_release release;
    cuda::adam_step<T>(tensors, cfg, context.exec());
  });
}

// The single-parameter entry points are one-item lists.
void sgd_step(py::object p, py::object g, py::object buffer, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first_step) {
  sgd_step_multi(py::make_tuple(p), py::make_tuple(g), buffer.is_none() ? py::object(py::none()) : py::make_tuple(buffer),
                 lr, momentum, dampening, weight_decay, nesterov, first_step);
}

void adam_step(py::object p, py::object g, py::object m, py::object v, int64_t step, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
  adam_step_multi(py::make_tuple(p), py::make_tuple(g), py::make_tuple(m), py::make_tuple(v), step, lr,
                  beta1, beta2, eps, weight_decay, decoupled);
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
