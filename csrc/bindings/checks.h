// The words of every argument check, used by both array policies (bindings/cpu/numpy_backend.cpp,
// bindings/cuda/cupy_backend.cpp) and by bindings/array.h, so both backends reject bad input
// with the same exception and the same message. No Python and no CUDA here: only dtypes, dims
// and messages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/errors.h"

namespace fastnn::bind {

enum class Dtype { float32, float64, int32, int64, uint8 };

inline const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::float32: return "float32";
    case Dtype::float64: return "float64";
    case Dtype::int32: return "int32";
    case Dtype::uint8: return "uint8";
    default: return "int64";
  }
}

inline int64_t dtype_size(Dtype d) {
  return (d == Dtype::float64 || d == Dtype::int64) ? 8 : d == Dtype::uint8 ? 1 : 4;
}

enum class Access { read, write };

// Calls f(T{}) with T = float or double for a float dtype.
template <class F>
decltype(auto) dispatch_float(Dtype dtype, F&& f) {
  if (dtype == Dtype::float64) return f(double{});
  return f(float{});
}

inline bool is_float(Dtype d) { return d == Dtype::float32 || d == Dtype::float64; }

// What an argument may hold: floats (float32/float64), integer indices or labels (int32/int64),
// bytes (uint8, e.g. a dropout mask).
enum class Kind { floats, indices, bytes };

inline bool kind_accepts(Kind kind, Dtype d) {
  switch (kind) {
    case Kind::floats: return is_float(d);
    case Kind::indices: return d == Dtype::int32 || d == Dtype::int64;
    default: return d == Dtype::uint8;
  }
}

inline const char* kind_expected(Kind kind) {
  switch (kind) {
    case Kind::floats: return "float32 or float64";
    case Kind::indices: return "int64 or int32";
    default: return "uint8";
  }
}

// TypeError unless the dtype suits `kind`. `known` is false for a dtype outside Dtype;
// `described` is how the array library prints it; `what` qualifies the expectation (" labels").
inline void check_kind(const char* op, const char* arg, Kind kind, bool known, Dtype d,
                       const std::string& described, const char* what = "") {
  if (!known || !kind_accepts(kind, d))
    throw_type_error("fastnn.", op, ": argument '", arg, "' must be ", kind_expected(kind), what,
                     "; got ", described);
}

inline void check_ndim(const char* op, const char* arg, const std::vector<int64_t>& dims,
                       int ndim) {
  if (ndim >= 0 && static_cast<int64_t>(dims.size()) != ndim)
    throw_value_error("fastnn.", op, ": argument '", arg, "' must be ", ndim, "-D; got shape ",
                      shape_str(dims));
}

// `library` is "numpy" or "cupy": the message names the call that makes a fitting copy.
[[noreturn]] inline void throw_not_contiguous(const char* op, const char* arg,
                                              const std::vector<int64_t>& dims,
                                              const char* library) {
  throw_value_error("fastnn.", op, ": argument '", arg,
                    "' must be C-contiguous; got a strided view of shape ", shape_str(dims),
                    " (use ", library, ".ascontiguousarray)");
}

[[noreturn]] inline void throw_misaligned(const char* op, const char* arg, const char* library) {
  throw_value_error("fastnn.", op, ": argument '", arg,
                    "' must be aligned to its element size; got a misaligned buffer (copy it with ",
                    library, ".array)");
}

[[noreturn]] inline void throw_read_only(const char* op, const char* arg) {
  throw_value_error("fastnn.", op, ": argument '", arg,
                    "' is updated in place and must be writeable; got a read-only array");
}

inline void check_same_dtype(const char* op, const char* a_name, Dtype a, const char* b_name,
                             Dtype b) {
  if (a != b)
    throw_type_error("fastnn.", op, ": argument '", b_name, "' must have the dtype of '", a_name,
                     "' (", dtype_name(a), "); got ", dtype_name(b));
}

inline void check_dims(const char* op, const char* name, const std::vector<int64_t>& have,
                       const std::vector<int64_t>& want, const char* why) {
  if (have != want)
    throw_value_error("fastnn.", op, ": argument '", name, "' must have shape ", shape_str(want),
                      " ", why, "; got ", shape_str(have));
}

// Byte ranges [begin, begin + bytes) of an output and an input; empty ranges never overlap.
inline void check_no_overlap(const char* op, const char* out_name, uintptr_t out_begin,
                             int64_t out_bytes, const char* in_name, uintptr_t in_begin,
                             int64_t in_bytes) {
  if (out_bytes == 0 || in_bytes == 0) return;
  if (out_begin < in_begin + static_cast<uintptr_t>(in_bytes) &&
      in_begin < out_begin + static_cast<uintptr_t>(out_bytes))
    throw_value_error("fastnn.", op, ": argument '", out_name, "' must not share memory with '",
                      in_name, "'");
}

// Runs check(), adding " (item i of n)" to the message of a ValueError or TypeError it raises:
// list arguments (the multi-tensor optimiser steps) then say which element was wrong.
template <class F>
decltype(auto) for_item(int64_t i, int64_t n, F&& check) {
  try {
    return check();
  } catch (const ValueError& e) {
    throw ValueError(cat(e.what(), " (item ", i, " of ", n, ")"));
  } catch (const TypeError& e) {
    throw TypeError(cat(e.what(), " (item ", i, " of ", n, ")"));
  }
}

}  // namespace fastnn::bind
