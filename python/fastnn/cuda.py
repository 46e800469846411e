"""The CUDA backend: whether it can run here, what it was built for, and how precise matrix
products are (on the GPU and, for :func:`set_matmul_precision`'s "medium", on the CPU).

fastnn runs an op on the GPU when its arrays are CuPy arrays: ``fastnn.ops`` dispatches them to
the ``fastnn._cuda`` extension, which is built only where a CUDA compiler was found (see
docs/GPU.md) and imported only on first use. A CPU-only install, or a GPU build on a machine
without a GPU or driver, imports fastnn fine: :func:`is_available` is then False,
:func:`unavailable_reason` says why, and a GPU op raises RuntimeError with that reason.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

_PRECISIONS = ("highest", "high", "medium")
# What the GPU kernels run for each setting. They have no bf16 product, so "medium" gets TF32:
# finer than it allows, and what PyTorch's "medium" also permits.
_GPU_PRECISION = {"highest": "highest", "high": "high", "medium": "high"}
# The CPU instructions a bf16 product (float32 accumulation) would need; /proc/cpuinfo's names.
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_precision = "highest"
_ready: ModuleType | None = None  # fastnn._cuda once every check has passed
_reason: str | None = None  # why not, once checked
_checked = False


def _extension() -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module("fastnn._cuda"), None
    except ImportError as e:
        if getattr(e, "name", None) == "fastnn._cuda":
            return None, (
                "fastnn was built without its CUDA backend (no fastnn._cuda extension): reinstall with a "
                "CUDA compiler present, e.g. FASTNN_CUDA=ON pip install . (docs/GPU.md)"
            )
        return None, f"fastnn._cuda failed to load: {e}"


def _check() -> None:
    global _ready, _reason, _checked
    if _checked:
        return
    module, reason = _extension()
    if module is not None:
        count, error = module.probe_devices()
        if count == 0 and not module.build_info()["driver"]:
            reason = f"no NVIDIA driver found: the CUDA runtime could not load libcuda ({error})"
        elif count == 0:
            reason = f"no usable CUDA GPU ({error or 'the driver reports no device'})"
    if reason is None:
        try:
            importlib.import_module("cupy")
        except ImportError as e:
            reason = f"CuPy, which holds fastnn's GPU arrays, cannot be imported ({e}); pip install cupy-cuda13x"
    if reason is None:
        _ready = module
        if _precision != "highest":
            module.set_matmul_precision(_GPU_PRECISION[_precision])
    _reason, _checked = reason, True


def is_available() -> bool:
    """True when GPU ops can run: the CUDA extension is built, a GPU and driver are present, and
    CuPy imports."""
    _check()
    return _ready is not None


def unavailable_reason() -> str | None:
    """Why :func:`is_available` is False (None when it is True)."""
    _check()
    return _reason


def require_available(where: str) -> None:
    """RuntimeError ``"<where>: the CUDA backend is not available: <reason>"`` unless GPU ops can
    run here; for entry points that take ``device="cuda"``."""
    if not is_available():
        raise RuntimeError(f"{where}: the CUDA backend is not available: {unavailable_reason()}")


def device_count() -> int:
    """GPUs the CUDA backend sees (0 without the extension or a driver)."""
    module, _ = _extension()
    return int(module.probe_devices()[0]) if module is not None else 0


def backend(op: str) -> ModuleType:
    """The extension that runs ``op`` on CuPy arrays; RuntimeError naming the op and the reason
    when the CUDA backend cannot run here."""
    if _ready is not None:
        return _ready
    _check()
    if _ready is None:
        raise RuntimeError(f"fastnn.{op}: got GPU arrays, but the CUDA backend is not available: {_reason}")
    return _ready


def set_matmul_precision(precision: str) -> None:
    """How float32 matrix products (matmul, linear, convolution and every GEMM-shaped op) may
    round their operands, with PyTorch's names (``torch.set_float32_matmul_precision``):

    - ``"highest"`` (default): exact float32 everywhere.
    - ``"high"``: on GPUs of compute capability 8.0 and newer, tensor cores round the operands
      to TF32 (10-bit mantissa, relative error ~1e-3); the CPU stays float32.
    - ``"medium"``: PyTorch's meaning is bf16 products (8-bit mantissa) with float32
      accumulation where the hardware has them. fastnn has no bf16 kernel yet: the GPU runs
      TF32 (as for "high", finer than "medium" allows) and the CPU keeps float32.
      :func:`cpu_matmul_precision` says what the CPU kernels use and why (``fastnn info``
      prints it).

    ValueError for any other value."""
    global _precision
    if precision not in _PRECISIONS:
        raise ValueError(
            "fastnn.set_matmul_precision: argument 'precision' must be 'highest', 'high' or 'medium'; "
            f"got {precision!r}"
        )
    _precision = precision
    if _ready is not None:
        _ready.set_matmul_precision(_GPU_PRECISION[precision])


def get_matmul_precision() -> str:
    """The current matmul precision setting, ``"highest"``, ``"high"`` or ``"medium"``."""
    return _precision


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (None where it cannot be read: not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def cpu_matmul_precision(setting: str | None = None) -> dict[str, str]:
    """What the CPU kernels' matrix products compute in under ``setting`` (default: the current
    :func:`set_matmul_precision` setting), and why: ``{"setting": ..., "precision": "float32",
    "reason": ...}``. Always float32 today: "highest" asks for it, "high" names the GPU's TF32,
    which CPUs lack, and for "medium" the reason says whether this CPU has the bf16 instructions
    (AVX512-BF16, AMX-BF16) a bf16 path would need."""
    setting = _precision if setting is None else setting
    if setting not in _PRECISIONS:
        raise ValueError(
            "fastnn.cuda.cpu_matmul_precision: argument 'setting' must be 'highest', 'high' or 'medium'; "
            f"got {setting!r}"
        )
    if setting == "highest":
        reason = "exact float32, as 'highest' asks"
    elif setting == "high":
        reason = "'high' allows TF32, a GPU tensor-core format; CPUs multiply in float32"
    else:
        flags = _cpu_flags()
        present = [f for f in _CPU_BF16_FLAGS if flags and f in flags]
        if flags is None:
            reason = "'medium' allows bf16 products, but fastnn has no bf16 CPU kernel (CPU flags unreadable here)"
        elif present:
            reason = (f"'medium' allows bf16 products and this CPU has {', '.join(present)}, but fastnn has no "
                      "bf16 CPU kernel yet")
        else:
            reason = ("'medium' allows bf16 products, but this CPU has no bf16 instructions "
                      f"(neither {' nor '.join(_CPU_BF16_FLAGS)})")
    return {"setting": setting, "precision": "float32", "reason": reason}


# The distributions that ship the `cupy` package (CuPy's wheels per CUDA major version, and
# the source package), tried before scanning every installed distribution's metadata.
_CUPY_DISTRIBUTIONS = ("cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x", "cupy")


def _cupy_version() -> str | None:
    # importlib.metadata pulls in the email package (~20 ms): only `info()` needs it. Its
    # packages_distributions() reads every installed distribution's metadata (~0.5 s with a
    # few hundred installed), and every training run's report calls this: without CuPy
    # there is nothing to look up, and with it the known distribution names come first.
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return None
    for dist in _CUPY_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    for dist in importlib.metadata.packages_distributions().get("cupy", []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def info() -> dict[str, Any]:
    """What the CUDA backend is and sees: whether it was built and for which GPU architectures,
    the CUDA runtime compiled in and the driver found, each GPU (name, compute capability, memory),
    CuPy's version, availability (and the reason when unavailable), matmul precision. Never
    imports CuPy."""
    module, _ = _extension()
    facts: dict[str, Any] = {"built": module is not None, "matmul_precision": _precision,
                             "gpu_matmul_precision": _GPU_PRECISION[_precision]}
    if module is not None:
        build = module.build_info()
        facts["architectures"] = build["architectures"]
        facts["nvcc"] = build["nvcc"]
        facts["runtime_version"] = _cuda_version_text(build["runtime"])
        facts["driver_version"] = _cuda_version_text(build["driver"]) if build["driver"] else None
        count, error = module.probe_devices()
        facts["devices"] = [module.device_properties(i) for i in range(count)]
        if error:
            facts["device_error"] = error
    facts["cupy"] = _cupy_version()
    facts["available"] = is_available()
    facts["reason"] = unavailable_reason()
    return facts


def _cuda_version_text(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def _arch_text(arch: str) -> str:
    """A CMAKE_CUDA_ARCHITECTURES entry of :func:`info`'s ``"architectures"`` in words:
    "90-real" -> sm_90 (machine code), "90" -> sm_90 + PTX (machine code and PTX the driver can
    compile for newer GPUs), "90-virtual" -> PTX only."""
    base, _, kind = arch.partition("-")
    if not base.isdigit():
        return arch  # "native", "all"...
    return {"real": f"sm_{base}", "virtual": f"PTX {base}"}.get(kind, f"sm_{base} + PTX")


__all__ = [
    "backend",
    "cpu_matmul_precision",
    "device_count",
    "get_matmul_precision",
    "info",
    "is_available",
    "require_available",
    "set_matmul_precision",
    "unavailable_reason",
]
