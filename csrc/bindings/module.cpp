// The op families every backend module registers (bindings/cpu/module.cpp makes fastnn._cpu,
// bindings/cuda/module.cpp fastnn._cuda), and the TypeError translation they share.
#include "bindings/module.h"

#include "common/errors.h"

namespace fastnn::bind {

void init_gemm(py::module_& m);
void init_linear(py::module_& m);
void init_conv2d(py::module_& m);
void init_activation(py::module_& m);
void init_softmax_xent(py::module_& m);
void init_bce_logits(py::module_& m);
void init_optim(py::module_& m);
void init_pool2d(py::module_& m);
void init_batchnorm(py::module_& m);
void init_dropout(py::module_& m);
void init_l2_normalize(py::module_& m);
void init_arcface(py::module_& m);
void init_triplet(py::module_& m);
void init_similarity(py::module_& m);

void init_ops(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastnn::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
  init_gemm(m);
  init_linear(m);
  init_conv2d(m);
  init_activation(m);
  init_softmax_xent(m);
  init_bce_logits(m);
  init_optim(m);
  init_pool2d(m);
  init_batchnorm(m);
  init_dropout(m);
  init_l2_normalize(m);
  init_arcface(m);
  init_triplet(m);
  init_similarity(m);
}

}  // namespace fastnn::bind
