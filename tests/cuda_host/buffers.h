// Test buffers for the emulated kernels (emulate.h): 64-byte aligned, like cudaMalloc's memory,
// and fenced by NaN guards on both sides, so an out-of-bounds read turns the result into NaN (a
// mismatch, not silent garbage) and an out-of-bounds write shows as a changed guard. Outputs
// start as NaN too, so an element a kernel never writes fails the comparison. Plus the
// comparison itself: |got - want| <= rtol * scale (scale: the sum of the absolute values of the
// terms of the element, so the bound follows rounding of a sum of that length).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

template <class T>
class Guarded {
 public:
  // n elements with `guard` NaNs before and after.
  Guarded(size_t n, size_t guard) : n_(n), guard_(guard) {
    const size_t total = n + 2 * guard, bytes = (total * sizeof(T) + 63) / 64 * 64;
    mem_ = static_cast<T*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64));
    for (size_t i = 0; i < total; ++i) mem_[i] = std::numeric_limits<T>::quiet_NaN();
  }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  ~Guarded() { std::free(mem_); }

  T* data() { return mem_ + guard_; }
  const T* data() const { return mem_ + guard_; }
  T& operator[](size_t i) { return data()[i]; }
  T operator[](size_t i) const { return data()[i]; }
  size_t size() const { return n_; }
  void fill_nan() {
    for (size_t i = 0; i < n_; ++i) data()[i] = std::numeric_limits<T>::quiet_NaN();
  }
  // True when nothing wrote into the guards.
  bool guards_intact() const {
    for (size_t i = 0; i < guard_; ++i)
      if (!std::isnan(mem_[i]) || !std::isnan(mem_[guard_ + n_ + i])) return false;
    return true;
  }

 private:
  T* mem_;
  size_t n_, guard_;
};

// The largest |got - want| / scale over the elements, infinity for any NaN or out-of-bound value.
template <class T>
double worst_error(const Guarded<T>& got, const std::vector<double>& want, const std::vector<double>& scale) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (std::isnan(err)) return std::numeric_limits<double>::infinity();
    worst = std::fmax(worst, err / (scale[i] > 0 ? scale[i] : 1.0));
  }
  return worst;
}

// |got - want| <= atol + rtol * |want| for every element (NaN only where want is NaN); returns the
// number of elements outside, printing the first few under `what`.
template <class Got>
int count_mismatches(const char* what, const Got* got, const std::vector<double>& want, double rtol, double atol) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = want[i];
    const bool ok = std::isnan(w) ? std::isnan(g) : std::fabs(g - w) <= atol + rtol * std::fabs(w);
    if (!ok && bad++ < 3) std::printf("%s: element %zu is %.17g, want %.17g\n", what, i, g, w);
  }
  return bad;
}

// |got - want| <= rtol * scale for every element (scale: the size of the terms the result is
// made of, where it cancels; NaN only where want is NaN); returns the number outside, printing
// the first few under `what`.
template <class Got>
int count_outside(const char* what, const Got* got, const std::vector<double>& want, const std::vector<double>& scale,
                  double rtol) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    const bool ok = std::isnan(want[i]) ? std::isnan(g) : std::fabs(g - want[i]) <= rtol * scale[i];
    if (!ok && bad++ < 3)
      std::printf("%s: element %zu is %.17g, want %.17g\n", what, i, g, want[i]);
  }
  return bad;
}
