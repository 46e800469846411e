// Binding for cpu/peak.h: the measured FMA peak the benchmarks divide by.
#include <pybind11/pybind11.h>

#include "common/errors.h"
#include "common/threading.h"
#include "cpu/peak.h"

namespace fastnn::bind {

namespace py = pybind11;

namespace {

double fma_peak_gflops(int threads, double seconds) {
  const char* op = "fma_peak_gflops";
  if (threads == 0) threads = get_num_threads();
  if (threads < 1)
    throw_value_error("fastnn.", op, ": argument 'threads' must be >= 1 (0: fastnn's thread ",
                      "count); got ", threads);
  if (!(seconds > 0.0 && seconds <= 60.0))
    throw_value_error("fastnn.", op, ": argument 'seconds' must be in (0, 60]; got ", seconds);
  py::gil_scoped_release release;
  return cpu::fma_peak_gflops(threads, seconds);
}

}  // namespace

void init_peak(py::module_& m) {
  m.def("fma_peak_gflops", &fma_peak_gflops, py::arg("threads") = 0, py::arg("seconds") = 0.2,
        "Measured float32 FMA throughput in GFLOP/s at the SIMD level in use (see cpu/peak.h).");
}

}  // namespace fastnn::bind
