// Errors raised by shape validation and the bindings.
//
// ValueError derives from std::invalid_argument, which pybind11 already turns into Python's
// ValueError; TypeError is registered with the extension module (bindings/module.cpp).
// Messages follow one pattern: "fastnn.<op>: argument '<arg>' <expected>; got <what came>".
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fastnn {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into one message string.
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  return os.str();
}

template <class... Parts>
[[noreturn]] void throw_value_error(const Parts&... parts) {
  throw ValueError(cat(parts...));
}

template <class... Parts>
[[noreturn]] void throw_type_error(const Parts&... parts) {
  throw TypeError(cat(parts...));
}

// "(2, 3, 4)" — shapes in messages read like NumPy's.
inline std::string shape_str(const std::vector<int64_t>& dims) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) os << ", ";
    os << dims[i];
  }
  if (dims.size() == 1) os << ",";
  os << ")";
  return os.str();
}

}  // namespace fastnn
