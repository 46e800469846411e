"""ONNX export: a fastnn model as an ONNX graph that onnxruntime (or any ONNX runtime) can run.

    import fastnn.onnx
    fastnn.onnx.export(model, "model.onnx", (1, 28, 28), normalize=(mean, std))

The graph is written with the ``onnx`` package (``pip install "fastnn[onnx]"``); ``import
fastnn`` and ``import fastnn.onnx`` never import it, :func:`export` does.

Layers and the ONNX operators they become (every layer in :mod:`fastnn.nn` that has a forward
of its own; losses are not part of a model's forward and are refused):

- Linear -> Gemm (transB=1); Conv2d -> Conv (pads, strides, dilations, group; bias or not)
- MaxPool2d -> MaxPool (padding never wins, as in fastnn); AvgPool2d -> AveragePool with
  count_include_pad=1 (fastnn counts padding as zeros); GlobalAvgPool2d -> GlobalAveragePool
  then Flatten (fastnn's output is (N, C))
- BatchNorm1d / BatchNorm2d -> BatchNormalization with the running statistics
- Dropout and Identity -> nothing (the tensor passes through); Flatten -> Flatten (start_dim 1)
  or Reshape; Residual -> its block and shortcut, then Add; Sequential -> its layers in order
- ReLU, LeakyReLU, Sigmoid, Tanh -> the operators of those names; GELU (exact, erf form) ->
  Gelu from opset 20, else ``0.5 * x * (1 + Erf(x / sqrt(2)))``
- L2Normalize (``x / max(||x||_2 over axis 1, eps)``) -> ReduceL2, Max, Div

The model is exported in its eval form whatever mode it is in: Dropout is the identity and
BatchNorm normalises by its running statistics, which is what ``model.eval()`` computes. The
model's mode, weights and forward caches are left as they were (a copy of it is run once, to
check that it takes ``input_shape`` and to read its output shape). Weights are written as float32.

Opset: 17 by default. Every operator above has had its present form since opset 13; 17 is read by
onnxruntime 1.12 and later and by most other runtimes, so the default graph travels furthest.
Opsets 13 to the newest the installed ``onnx`` knows are accepted; from 20 on GELU is one Gelu
node, and from 18 on ReduceL2 takes its axes as an input rather than an attribute.

The batch axis is dynamic (the symbolic dimension "batch"); every other axis is fixed by
``input_shape``. ``normalize=(mean, std)`` puts the input normalisation of the run inside the
graph (Sub, then Div, per channel), so the model takes images as :mod:`fastnn.data` yields them:
float32 NCHW in [0, 1], i.e. pixels / 255. The model's ``doc_string`` and ``metadata_props``
say so, with the input shape, channels, fastnn's version and whatever ``metadata`` adds (class
names under "classes").
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import fastnn
from fastnn import nn
from fastnn._args import int_tuple
from fastnn._atomic import write_bytes_atomic
from fastnn._device import to_device, to_device_like

DEFAULT_OPSET = 17
MIN_OPSET = 13
BATCH = "batch"  # the symbolic name of the dynamic batch axis
CONTRACT_NORMALIZED = "float32 NCHW in [0,1]"


class ExportError(ValueError):
    """A model (or one of its layers) that has no ONNX form, or export arguments that do not fit."""


def _onnx() -> ModuleType:
    """The ``onnx`` package, or ImportError naming the extra that installs it."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            f'fastnn.onnx.export needs the onnx package, which is not installed: pip install "fastnn[onnx]" ({e})'
        ) from e
    return onnx


def _numpy32(array: Any) -> np.ndarray:
    """A parameter or buffer as a float32 NumPy array (copied from the GPU where it lives there)."""
    data = array.data if isinstance(array, nn.Parameter) else array
    return np.ascontiguousarray(to_device(data, "cpu"), dtype=np.float32)


class _Graph:
    """The nodes and initialisers of the graph being built, and unique tensor names."""

    def __init__(self, helper: ModuleType, numpy_helper: ModuleType, opset: int) -> None:
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    def name(self, hint: str) -> str:
        """``hint``, or ``hint`` with a numeric suffix if the graph has it already."""
        name, i = hint, 1
        while name in self._names:
            name, i = f"{hint}_{i}", i + 1
        self._names.add(name)
        return name

    def constant(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        """An initialiser holding ``value``; returns its name."""
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, path: str, module: nn.Module, attribute: str) -> str:
        """The module's parameter or buffer ``attribute`` as an initialiser named as in its state
        dict (e.g. ``3.weight``), so the graph's weights can be matched with the checkpoint's."""
        return self.constant(f"{path}.{attribute}" if path else attribute, _numpy32(getattr(module, attribute)))

    def node(self, op: str, inputs: Sequence[str], path: str, **attributes: Any) -> str:
        """Appends one ``op`` node named after the layer at ``path``; returns its output's name."""
        where = path or "model"
        output = self.name(f"{where}/{op}")
        self.nodes.append(self.helper.make_node(op, list(inputs), [output], name=output, **attributes))
        return output


Converter = Callable[[_Graph, Any, str, str], str]


def _linear(g: _Graph, m: nn.Linear, x: str, path: str) -> str:
    inputs = [x, g.weight(path, m, "weight")] + ([g.weight(path, m, "bias")] if m.bias is not None else [])
    return g.node("Gemm", inputs, path, transB=1)


def _conv2d(g: _Graph, m: nn.Conv2d, x: str, path: str) -> str:
    inputs = [x, g.weight(path, m, "weight")] + ([g.weight(path, m, "bias")] if m.bias is not None else [])
    (ph, pw), (kh, kw) = m.padding, m.kernel_size
    return g.node("Conv", inputs, path, kernel_shape=[kh, kw], pads=[ph, pw, ph, pw], strides=list(m.stride),
                  dilations=list(m.dilation), group=m.groups)


def _pool_window(m: Any) -> dict[str, Any]:
    (ph, pw) = m.padding
    return dict(kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=[ph, pw, ph, pw])


def _max_pool2d(g: _Graph, m: nn.MaxPool2d, x: str, path: str) -> str:
    return g.node("MaxPool", [x], path, **_pool_window(m))


def _avg_pool2d(g: _Graph, m: nn.AvgPool2d, x: str, path: str) -> str:
    # fastnn divides every window by kh * kw, padding counted as zeros.
    return g.node("AveragePool", [x], path, count_include_pad=1, **_pool_window(m))


def _global_avg_pool2d(g: _Graph, m: nn.GlobalAvgPool2d, x: str, path: str) -> str:
    # GlobalAveragePool keeps (N, C, 1, 1); fastnn's layer gives (N, C).
    return g.node("Flatten", [g.node("GlobalAveragePool", [x], path)], path, axis=1)


def _batch_norm(g: _Graph, m: Any, x: str, path: str) -> str:
    inputs = [x] + [g.weight(path, m, a) for a in ("weight", "bias", "running_mean", "running_var")]
    return g.node("BatchNormalization", inputs, path, epsilon=float(m.eps))


def _flatten(g: _Graph, m: nn.Flatten, x: str, path: str) -> str:
    if m.start_dim == 1:
        return g.node("Flatten", [x], path, axis=1)
    # Keep the leading start_dim axes (0 copies an axis in Reshape), merge the rest.
    shape = g.constant(f"{path}.shape", [0] * m.start_dim + [-1], np.int64)
    return g.node("Reshape", [x, shape], path)


def _passthrough(g: _Graph, m: nn.Module, x: str, path: str) -> str:
    return x


def _sequential(g: _Graph, m: nn.Sequential, x: str, path: str) -> str:
    for name, child in m._modules.items():
        x = _convert(g, child, x, f"{path}.{name}" if path else name)
    return x


def _residual(g: _Graph, m: nn.Residual, x: str, path: str) -> str:
    prefix = f"{path}." if path else ""
    main = _convert(g, m.block, x, prefix + "block")
    skip = x if m.shortcut is None else _convert(g, m.shortcut, x, prefix + "shortcut")
    return g.node("Add", [main, skip], path)


def _relu(g: _Graph, m: nn.ReLU, x: str, path: str) -> str:
    return g.node("Relu", [x], path)


def _leaky_relu(g: _Graph, m: nn.LeakyReLU, x: str, path: str) -> str:
    return g.node("LeakyRelu", [x], path, alpha=float(m.negative_slope))


def _sigmoid(g: _Graph, m: nn.Sigmoid, x: str, path: str) -> str:
    return g.node("Sigmoid", [x], path)


def _tanh(g: _Graph, m: nn.Tanh, x: str, path: str) -> str:
    return g.node("Tanh", [x], path)


def _gelu(g: _Graph, m: nn.GELU, x: str, path: str) -> str:
    if g.opset >= 20:
        return g.node("Gelu", [x], path, approximate="none")
    erf = g.node("Erf", [g.node("Div", [x, g.constant(f"{path}.sqrt2", math.sqrt(2.0))], path)], path)
    one_plus = g.node("Add", [erf, g.constant(f"{path}.one", 1.0)], path)
    return g.node("Mul", [g.node("Mul", [x, one_plus], path), g.constant(f"{path}.half", 0.5)], path)


def _l2_normalize(g: _Graph, m: nn.Module, x: str, path: str) -> str:
    # fastnn.nn.L2Normalize: y = x / max(||x||_2 over axis 1, eps).
    axes = [1]
    if g.opset >= 18:
        norm = g.node("ReduceL2", [x, g.constant(f"{path}.axes", axes, np.int64)], path, keepdims=1)
    else:
        norm = g.node("ReduceL2", [x], path, axes=axes, keepdims=1)
    floor = g.node("Max", [norm, g.constant(f"{path}.eps", float(m.eps))], path)
    return g.node("Div", [x, floor], path)


_CONVERTERS: dict[type, Converter] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.MaxPool2d: _max_pool2d,
    nn.AvgPool2d: _avg_pool2d,
    nn.GlobalAvgPool2d: _global_avg_pool2d,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.Dropout: _passthrough,
    nn.Identity: _passthrough,
    nn.Flatten: _flatten,
    nn.Sequential: _sequential,
    nn.Residual: _residual,
    nn.ReLU: _relu,
    nn.LeakyReLU: _leaky_relu,
    nn.Sigmoid: _sigmoid,
    nn.Tanh: _tanh,
    nn.GELU: _gelu,
}
# Layers found by name, so that this module works with a fastnn.nn that lacks them.
_CONVERTERS_BY_NAME: dict[str, Converter] = {"L2Normalize": _l2_normalize}


def exportable_layers() -> list[str]:
    """The names of the :mod:`fastnn.nn` layers :func:`export` converts (in this fastnn)."""
    by_name = [n for n in _CONVERTERS_BY_NAME if isinstance(getattr(nn, n, None), type)]
    return sorted([t.__name__ for t in _CONVERTERS] + by_name)


def _converter(m: nn.Module, path: str) -> Converter:
    """The converter of ``m``'s exact class; ExportError naming the layer where there is none."""
    cls = type(m)
    where = f"layer {path} ({cls.__name__})" if path else f"the model ({cls.__name__})"
    convert = _CONVERTERS.get(cls)
    if convert is None and getattr(nn, cls.__name__, None) is cls:
        convert = _CONVERTERS_BY_NAME.get(cls.__name__)
    if convert is None:
        known = next((t.__name__ for t in _CONVERTERS if isinstance(m, t)), None)
        # A subclass may compute something else in its forward: exporting it as its base would
        # give a graph that silently disagrees with the model.
        why = (f"it subclasses fastnn.nn.{known}, whose ONNX form may not be what its forward computes"
               if known else "it is not a fastnn.nn layer with an ONNX form")
        raise ExportError(f"fastnn.onnx.export: {where} has no ONNX form: {why}; "
                          f"the exportable layers are {', '.join(exportable_layers())}")
    if "forward" in vars(m):
        raise ExportError(f"fastnn.onnx.export: {where} has its forward replaced on the instance, "
                          "so its ONNX form may not be what it computes")
    return convert


def _convert(g: _Graph, m: nn.Module, x: str, path: str) -> str:
    return _converter(m, path)(g, m, x, path)


def _eval_forward(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape (without the batch) of ``model``'s eval forward on one zero input of
    ``shape``: checks that the model takes that input, with the layers' own messages. A copy
    runs, so the model's mode and its forward caches (what its next backward would use) stay."""
    probe = copy.deepcopy(model).eval()
    first = next(iter(probe.parameters()), None)
    x = np.zeros((1,) + shape, dtype=np.float32)
    if first is not None:
        x = to_device_like(x, first.data).astype(first.dtype)
    try:
        y = probe(x)
    except (ValueError, TypeError) as e:
        raise ExportError(f"fastnn.onnx.export: the model does not take input_shape {shape}: {e}") from e
    return tuple(int(d) for d in y.shape[1:])


def _normalization(normalize: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as float32 arrays that broadcast over axis 1 of a (batch, *shape) input:
    (1, C, 1, 1) for images (or (1, 1, 1, 1) for one value of each)."""
    channels = shape[0]
    try:
        mean, std = (np.asarray(v, dtype=np.float32).reshape(-1) for v in normalize)
    except (TypeError, ValueError):
        raise ExportError(f"fastnn.onnx.export: argument 'normalize' must be (mean, std); got {normalize!r}") from None
    for name, v in (("mean", mean), ("std", std)):
        if v.size not in (1, channels):
            raise ExportError(f"fastnn.onnx.export: argument 'normalize' needs 1 or {channels} (channels) values of "
                              f"{name}; got {v.size}")
    if not (np.all(np.isfinite(mean)) and np.all(std > 0) and np.all(np.isfinite(std))):
        raise ExportError(f"fastnn.onnx.export: argument 'normalize' needs finite means and positive stds; "
                          f"got mean {mean.tolist()}, std {std.tolist()}")
    broadcast = (1, -1) + (1,) * (len(shape) - 1)
    return mean.reshape(broadcast), std.reshape(broadcast)


def _metadata_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def export(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int],
    *,
    opset: int = DEFAULT_OPSET,
    input_name: str = "input",
    output_name: str = "logits",
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``model`` as an ONNX model to ``path`` (atomically); returns the path.

    ``input_shape`` is one example's shape without the batch axis, e.g. (channels, height,
    width); the graph's input ``input_name`` is float32 ("batch", *input_shape), its output
    ``output_name`` the model's output (the logits of a classifier). ``normalize=(mean, std)``
    (one value, or one per channel) makes the graph compute ``(x - mean) / std`` on its input
    first, so it takes what :mod:`fastnn.data` yields (float32 in [0, 1]) rather than normalised
    tensors. ``metadata`` adds entries to the model's metadata_props (values that are not
    strings are stored as JSON; put class names under "classes"). See the module docstring for
    the layers, the opset and the eval form.

    Raises ExportError (a ValueError) naming the layer for a layer with no ONNX form, and for an
    ``input_shape`` the model does not take; ImportError naming the extra when ``onnx`` is missing.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    if not isinstance(model, nn.Module):
        raise ExportError(f"fastnn.onnx.export: argument 'model' must be a fastnn.nn.Module; got {type(model).__name__}")
    try:
        shape = int_tuple("onnx.export", "input_shape", input_shape)
    except TypeError as e:
        raise ExportError(str(e)) from None
    if not shape or min(shape) < 1:
        raise ExportError(f"fastnn.onnx.export: argument 'input_shape' must be one example's shape without the batch "
                          f"axis, e.g. (channels, height, width), all positive; got {tuple(input_shape)}")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ExportError(f"fastnn.onnx.export: argument 'opset' must be an int from {MIN_OPSET} to {newest} (the newest "
                          f"the installed onnx {onnx.__version__} knows); got {opset!r}")
    for arg, value in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(value, str) or not value:
            raise ExportError(f"fastnn.onnx.export: argument '{arg}' must be a non-empty str; got {value!r}")
    if input_name == output_name:
        raise ExportError(f"fastnn.onnx.export: 'input_name' and 'output_name' must differ; both are {input_name!r}")

    g = _Graph(helper, numpy_helper, opset)
    x = g.name(input_name)
    g.name(output_name)  # reserved: no other tensor may take the output's name
    dims = ", ".join(str(d) for d in (BATCH, *shape))
    contract = f"float32 ({dims}), as the model's forward takes it (no normalisation in the graph)"
    if normalize is not None:
        mean, std = _normalization(normalize, shape)
        centred = g.node("Sub", [x, g.constant("normalize.mean", mean)], "normalize")
        x = g.node("Div", [centred, g.constant("normalize.std", std)], "normalize")
        contract = CONTRACT_NORMALIZED
    y = _convert(g, model, x, "")  # a layer with no ONNX form fails here, before the model runs
    out_shape = _eval_forward(model, shape)
    g.nodes.append(helper.make_node("Identity", [y], [output_name], name="output"))

    graph = helper.make_graph(
        g.nodes, type(model).__name__, [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [BATCH, *shape])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [BATCH, *out_shape])], g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    # The lowest IR version that carries this opset, so that older runtimes can load the file.
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="fastnn",
                                   producer_version=fastnn.__version__,
                                   ir_version=helper.find_min_ir_version_for(opsets))
    props = {"fastnn_version": fastnn.__version__, "input_contract": contract,
             "input_shape": json.dumps([BATCH, *shape])}
    if len(shape) == 3:
        props.update(channels=str(shape[0]), input_size=json.dumps(list(shape[1:])))
    if normalize is not None:
        props.update(normalize_mean=json.dumps(mean.reshape(-1).tolist()), normalize_std=json.dumps(std.reshape(-1).tolist()))
    props.update({str(k): _metadata_text(v) for k, v in (metadata or {}).items()})
    helper.set_model_props(onnx_model, props)
    onnx_model.doc_string = _doc_string(type(model).__name__, input_name, output_name, shape, out_shape,
                                        normalize is not None, props)
    onnx.checker.check_model(onnx_model, full_check=True)
    path = Path(path)
    write_bytes_atomic(path, onnx_model.SerializeToString())
    return path


def _doc_string(model: str, input_name: str, output_name: str, shape: tuple[int, ...], out_shape: tuple[int, ...],
                normalized: bool, props: Mapping[str, str]) -> str:
    """The model's description for a deployer: what to feed it and what comes out."""
    dims = ", ".join(str(d) for d in (BATCH, *shape))
    feed = (f"float32 NCHW ({dims}) in [0, 1] (pixels / 255); the graph subtracts the mean "
            f"{props['normalize_mean']} and divides by the std {props['normalize_std']} per channel itself"
            if normalized else f"float32 ({dims}), as the fastnn model's forward takes it")
    lines = [f"{model} exported by fastnn {fastnn.__version__}.",
             f"Input '{input_name}': {feed}.",
             f"Output '{output_name}': float32 ({', '.join(str(d) for d in (BATCH, *out_shape))}); for a classifier "
             "these are logits: softmax gives the class probabilities."]
    if "classes" in props:
        lines.append(f"Classes, in output order: {props['classes']}.")
    return "\n".join(lines)


__all__ = ["DEFAULT_OPSET", "ExportError", "export", "exportable_layers"]
