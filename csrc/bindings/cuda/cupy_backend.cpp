#include "bindings/cuda/cupy_backend.h"

#include <pybind11/gil_safe_call_once.h>

#include <string>

namespace fastnn::bind {
namespace {

// CuPy's functions, looked up once (and never freed: they must outlive interpreter teardown).
struct Cupy {
  py::object empty, get_current_stream, numpy_dtype;
};

const Cupy& cupy() {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<Cupy> storage;
  return storage
      .call_once_and_store_result([] {
        py::module_ cp = py::module_::import("cupy");
        return Cupy{cp.attr("empty"), py::module_::import("cupy.cuda").attr("get_current_stream"),
                    py::module_::import("numpy").attr("dtype")};
      })
      .get_stored();
}

std::string type_name(const py::handle& obj) {
  const py::object type = py::type::of(obj);
  const std::string module = py::str(type.attr("__module__")).cast<std::string>();
  const std::string name = py::str(type.attr("__name__")).cast<std::string>();
  return module == "builtins" ? name : module.substr(0, module.find('.')) + "." + name;
}

bool classify(const std::string& typestr, Dtype* out) {
  // Little-endian ('<') or byte-order-free ('|') codes only: a '>' array is not native here.
  if (typestr == "<f4") return *out = Dtype::float32, true;
  if (typestr == "<f8") return *out = Dtype::float64, true;
  if (typestr == "<i4") return *out = Dtype::int32, true;
  if (typestr == "<i8") return *out = Dtype::int64, true;
  if (typestr == "|u1") return *out = Dtype::uint8, true;
  return false;
}

bool c_contiguous(const std::vector<int64_t>& dims, const py::handle& strides, int64_t itemsize,
                  int64_t numel) {
  if (strides.is_none() || numel == 0) return true;
  const py::tuple st = py::reinterpret_borrow<py::tuple>(strides);
  int64_t expected = itemsize;
  for (size_t i = dims.size(); i-- > 0;) {
    if (dims[i] != 1 && st[i].cast<int64_t>() != expected) return false;
    expected *= dims[i];
  }
  return true;
}

// The memory must be device (or managed) memory of the current device: a pointer from another
// GPU or from the host would fault inside a kernel instead of raising here.
void check_device_memory(const char* op, const char* arg, uintptr_t address) {
  cudaPointerAttributes attributes{};
  const cudaError_t status = cudaPointerGetAttributes(&attributes, reinterpret_cast<void*>(address));
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the non-sticky error
    throw_value_error("fastnn.", op, ": argument '", arg, "' must be in GPU memory; CUDA does not know its address (",
                      cudaGetErrorString(status), ")");
  }
  if (attributes.type == cudaMemoryTypeManaged) return;
  if (attributes.type != cudaMemoryTypeDevice)
    throw_value_error("fastnn.", op, ": argument '", arg, "' must be in GPU memory; got host memory");
  const int device = cuda::current_device();
  if (attributes.device != device)
    throw_value_error("fastnn.", op, ": argument '", arg, "' must be on the current CUDA device (cuda:", device,
                      "); got an array on cuda:", attributes.device, " (use `with cupy.cuda.Device(",
                      attributes.device, "):`)");
}

}  // namespace

Array CupyBackend::take(const char* op, const char* arg, const py::handle& obj, Kind kind, int ndim,
                         Access access, const char* what) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw_type_error("fastnn.", op, ": argument '", arg,
                     "' must be a cupy.ndarray (the other arguments are on the GPU); got ", type_name(obj));
  const py::dict cai = obj.attr("__cuda_array_interface__");
  Array out;
  out.object = py::reinterpret_borrow<py::object>(obj);
  out.name = arg;
  out.present = true;
  const std::string typestr = cai["typestr"].cast<std::string>();
  const bool known = classify(typestr, &out.dtype);
  if (!known || !kind_accepts(kind, out.dtype))
    check_kind(op, arg, kind, known, out.dtype, py::str(cupy().numpy_dtype(typestr)).cast<std::string>(), what);
  for (const py::handle d : cai["shape"]) out.dims.push_back(d.cast<int64_t>());
  check_ndim(op, arg, out.dims, ndim);
  out.numel = checked_numel(out.dims, op);
  const py::object strides = cai.contains("strides") ? py::object(cai["strides"]) : py::none();
  if (!c_contiguous(out.dims, strides, dtype_size(out.dtype), out.numel))
    throw_not_contiguous(op, arg, out.dims, "cupy");
  const py::tuple data = cai["data"];
  out.address = data[0].cast<uintptr_t>();
  if (out.address % dtype_size(out.dtype) != 0) throw_misaligned(op, arg, "cupy");
  if (access == Access::write && data[1].cast<bool>()) throw_read_only(op, arg);
  if (out.numel > 0) check_device_memory(op, arg, out.address);
  return out;
}


Array CupyBackend::empty(const char* op, const char* name, Dtype dtype,
                         const std::vector<int64_t>& dims) {
  Array out;
  out.numel = checked_numel(dims, op);
  checked_mul(out.numel, dtype_size(dtype), op);
  py::tuple shape(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) shape[i] = py::int_(dims[i]);
  out.object = cupy().empty(shape, dtype_name(dtype));
  out.dtype = dtype;
  out.dims = dims;
  out.name = name;
  out.present = true;
  out.address = out.object.attr("data").attr("ptr").cast<uintptr_t>();
  return out;
}

void CupyBackend::zero(const Array& a, const Context& context) {
  if (a.nbytes() == 0) return;
  cuda::check_cuda(cudaMemsetAsync(reinterpret_cast<void*>(a.address), 0, a.nbytes(),
                                   context.exec().stream),
                   "zeroing an array");
}

template <class T>
T CupyBackend::read(const Array& a, int64_t index) {
  T value{};
  const Context context;
  cuda::check_cuda(cudaMemcpyAsync(&value, a.data<T>() + index, sizeof(T), cudaMemcpyDeviceToHost,
                                   context.exec().stream),
                   "reading an element");
  cuda::check_cuda(cudaStreamSynchronize(context.exec().stream), "reading an element");
  return value;
}

template float CupyBackend::read<float>(const Array&, int64_t);
template double CupyBackend::read<double>(const Array&, int64_t);
template int32_t CupyBackend::read<int32_t>(const Array&, int64_t);
template int64_t CupyBackend::read<int64_t>(const Array&, int64_t);

CupyBackend::Context::Context() {
  exec_.stream = reinterpret_cast<cudaStream_t>(cupy().get_current_stream().attr("ptr").cast<uintptr_t>());
  exec_.workspace = this;
}

CupyBackend::Context::~Context() = default;

void* CupyBackend::Context::allocate(size_t bytes) {
  py::gil_scoped_acquire gil;
  py::object block = cupy().empty(py::make_tuple(bytes), "uint8");
  void* address = reinterpret_cast<void*>(block.attr("data").attr("ptr").cast<uintptr_t>());
  blocks_.push_back(std::move(block));
  return address;
}

}  // namespace fastnn::bind
