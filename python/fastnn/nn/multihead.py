"""Several output heads on one shared trunk (attribute recognition), and their summed loss.

``MultiHead({"even": Linear(128, 1), "loops": Linear(128, 3)})`` maps one (N, F) input to a
dict of logits, one array per head. Its backward takes a dict of gradients, one per head, and
returns the sum of the heads' input gradients: the shared input fed every head, so dL/dx is
the sum over heads (the multivariate chain rule).

``MultiHeadLoss`` scores such a dict against an (N, A) target table, one column per head in
the spec's order: binary heads (one logit) by BCE on logits with targets 0/1, multiclass heads
(k logits) by softmax cross-entropy on class ids; -1 marks an unknown target, which adds no
loss and no gradient.
"""

from __future__ import annotations

import math
from typing import Iterator, Mapping, Union

import numpy as np

from fastnn._backend import Array
from fastnn._device import to_device_like, zeros_like
from fastnn.nn.loss import BCEWithLogits, SoftmaxCrossEntropy
from fastnn.nn.module import Module

HeadKind = Union[str, int]
"""A head in a :class:`MultiHeadLoss` spec: ``"binary"`` (one logit) or the class count k >= 2."""

UNKNOWN = -1
"""The target value of an unknown (missing) label in an attribute table."""


def _check_names(where: str, argument: str, names: list[object]) -> None:
    for name in names:
        if not isinstance(name, str) or not name or "." in name:
            # A dot would make the head's state-dict keys ambiguous ("heads.a.b.weight").
            raise ValueError(f"fastnn.nn.{where}: argument '{argument}' must map non-empty names without '.' to "
                             f"heads; got the name {name!r}")


def _same_names(where: str, argument: str, got: Mapping, expected: list[str]) -> None:
    """ValueError naming the missing and unexpected keys of ``got`` (a dict keyed by head)."""
    if not isinstance(got, Mapping):
        raise TypeError(f"fastnn.nn.{where}: argument '{argument}' must be a dict of one array per head "
                        f"({', '.join(expected)}); got {type(got).__name__}")
    missing = [n for n in expected if n not in got]
    unexpected = [n for n in got if n not in expected]
    if missing or unexpected:
        raise ValueError(f"fastnn.nn.{where}: argument '{argument}' must have one entry per head "
                         f"({', '.join(expected)}); missing {missing}, unexpected {unexpected}")


class MultiHead(Module):
    """Applies every head to the same input; ``forward`` returns ``{name: head(x)}``.

    Use it as the last module of a :class:`fastnn.nn.Sequential`, after the shared trunk:
    ``nn.Sequential(trunk, nn.MultiHead({...}))``; the Sequential's backward then takes the
    dict of gradients that :meth:`MultiHeadLoss.backward` returns. The heads are registered
    under their names, so ``parameters()``, ``state_dict()`` (keys ``<name>.weight``...),
    ``to(device)``, ``train()``/``eval()`` and ``summary()`` see them.
    """

    def __init__(self, heads: Mapping[str, Module]) -> None:
        """``heads`` maps each head's name to its module (e.g. a Linear to 1 or k logits), in
        the order the outputs are listed."""
        super().__init__()
        if not isinstance(heads, Mapping) or not heads:
            raise ValueError(f"fastnn.nn.MultiHead: argument 'heads' must be a non-empty dict of name -> Module; "
                             f"got {heads!r}")
        _check_names("MultiHead", "heads", list(heads))
        for name, head in heads.items():
            if not isinstance(head, Module):
                raise TypeError(f"fastnn.nn.MultiHead: head {name!r} must be a Module; got {type(head).__name__}")
            # Registered in the module table only (not as attributes), so a head named like a
            # method ("forward", "train") cannot shadow it.
            self._modules[name] = head

    @property
    def names(self) -> list[str]:
        """The heads' names, in order."""
        return list(self._modules)

    def __getitem__(self, name: str) -> Module:
        """The head called ``name``."""
        return self._modules[name]

    def __len__(self) -> int:
        """The number of heads."""
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        """The heads' names, in order."""
        return iter(self._modules)

    def forward(self, x: Array) -> dict[str, Array]:  # type: ignore[override]
        """``{name: head(x)}`` for every head, in order."""
        return {name: head(x) for name, head in self._modules.items()}

    def backward(self, grad_out: Mapping[str, Array]) -> Array:  # type: ignore[override]
        """Runs each head's backward on its entry of ``grad_out`` (a dict with one gradient per
        head) and returns the sum of their input gradients."""
        _same_names("MultiHead.backward", "grad_out", grad_out, self.names)
        grads = [head.backward(grad_out[name]) for name, head in self._modules.items()]
        if len(grads) == 1:
            return grads[0]
        # A fresh array for the sum: a head (Identity) may hand back the caller's own gradient.
        total = grads[0] + grads[1]
        for grad in grads[2:]:
            total += grad
        return total

    def extra_repr(self) -> str:
        return ", ".join(self.names)


def _check_spec(spec: object) -> dict[str, HeadKind]:
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"fastnn.nn.MultiHeadLoss: argument 'spec' must be a non-empty dict of head name -> "
                         f"'binary' or a class count; got {spec!r}")
    _check_names("MultiHeadLoss", "spec", list(spec))
    checked: dict[str, HeadKind] = {}
    for name, kind in spec.items():
        if kind == "binary":
            checked[name] = "binary"
        elif isinstance(kind, (int, np.integer)) and not isinstance(kind, bool) and kind >= 2:
            checked[name] = int(kind)
        else:
            raise ValueError(f"fastnn.nn.MultiHeadLoss: argument 'spec' must give each head 'binary' or a class "
                             f"count >= 2; got {kind!r} for head {name!r}")
    return checked


def _check_weights(weights: object, names: list[str]) -> dict[str, float]:
    if weights is None:
        return {name: 1.0 for name in names}
    _same_names("MultiHeadLoss", "weights", weights, names)  # type: ignore[arg-type]
    checked = {}
    for name in names:
        w = weights[name]  # type: ignore[index]
        if isinstance(w, bool) or not isinstance(w, (int, float, np.floating, np.integer)) \
                or not math.isfinite(w) or w < 0:
            raise ValueError(f"fastnn.nn.MultiHeadLoss: argument 'weights' must hold finite numbers >= 0; "
                             f"got {w!r} for head {name!r}")
        checked[name] = float(w)
    return checked


class MultiHeadLoss(Module):
    """The weighted sum of one loss per head of a :class:`MultiHead`.

    ``spec`` maps each head's name to ``"binary"`` (one logit, :class:`BCEWithLogits` against
    0/1) or its class count k (k logits, :class:`SoftmaxCrossEntropy` against class ids), in
    the order of the target table's columns. ``weights`` (default 1 each) maps the same names
    to non-negative factors.

    Called as ``loss(outputs, targets)``: ``outputs`` the MultiHead's dict, ``targets`` an
    (N, A) array with one column per head (any real dtype; multiclass columns hold whole class
    ids). -1 is an unknown target: each head's loss is the mean over its known rows, unknown
    rows get a zero gradient, and a head with no known row in the batch contributes 0 (a batch
    of 0 images gives NaN, the mean of nothing, as the other losses do, and empty gradients). A
    multiclass head selects its known rows itself; a binary head passes its column, -1 and all,
    to :class:`BCEWithLogits`, which skips the unknown entries.

    Returns the weighted sum as a float; :meth:`backward` returns ``{name: dloss/dlogits}``
    for :meth:`MultiHead.backward`. After each call ``last_losses`` holds every head's own
    (unweighted) loss and ``last_known`` its number of known targets, for logging.
    """

    def __init__(self, spec: Mapping[str, HeadKind], weights: Mapping[str, float] | None = None) -> None:
        """See the class docstring for ``spec`` and ``weights``."""
        super().__init__()
        self.spec = _check_spec(spec)
        self.weights = _check_weights(weights, list(self.spec))
        self.last_losses: dict[str, float] = {}
        self.last_known: dict[str, int] = {}
        self._grads: dict[str, Array] | None = None
        self._binary = BCEWithLogits()
        self._multiclass = SoftmaxCrossEntropy()

    def forward(self, outputs: Mapping[str, Array], targets: Array) -> float:  # type: ignore[override]
        """The weighted sum of the heads' losses (see the class docstring)."""
        names = list(self.spec)
        _same_names("MultiHeadLoss", "outputs", outputs, names)
        first = outputs[names[0]]
        n = int(first.shape[0]) if getattr(first, "ndim", 0) >= 1 else -1
        table = to_device_like(targets, first)
        if table.ndim != 2 or table.shape != (n, len(names)) or table.dtype.kind not in "biuf":
            raise ValueError(f"fastnn.nn.MultiHeadLoss: argument 'targets' must be a real array of shape "
                             f"({n}, {len(names)}): one row per image, one column per head ({', '.join(names)}); "
                             f"got shape {tuple(table.shape)}, dtype {table.dtype}")
        total, grads, losses, known_counts = 0.0, {}, {}, {}
        for column, name in enumerate(names):
            logits, kind = outputs[name], self.spec[name]
            width = 1 if kind == "binary" else kind
            if getattr(logits, "ndim", 0) != 2 or tuple(logits.shape) != (n, width):
                raise ValueError(f"fastnn.nn.MultiHeadLoss: head {name!r} must output shape ({n}, {width}) "
                                 f"({'binary: 1 logit' if kind == 'binary' else f'{kind} classes'}); "
                                 f"got {tuple(getattr(logits, 'shape', ()))}")
            values = table[:, column]
            try:
                if kind == "binary":
                    loss, grad, known = self._binary_head(logits, values)
                else:
                    loss, grad, known = self._multiclass_head(name, logits, values, kind)
            except ValueError as error:
                raise ValueError(f"fastnn.nn.MultiHeadLoss: head {name!r}: {error}") from error
            losses[name], known_counts[name] = loss, known
            weight = self.weights[name]
            total += weight * loss
            grads[name] = grad if weight == 1.0 else grad * weight
        if n == 0:  # the mean of nothing, as the other losses (and PyTorch) give for a batch of 0
            total, losses = float("nan"), dict.fromkeys(names, float("nan"))
        self.last_losses, self.last_known, self._grads = losses, known_counts, grads
        return total

    def _binary_head(self, logits: Array, values: Array) -> tuple[float, Array, int]:
        known = int((values != UNKNOWN).sum())
        if known == 0:
            return 0.0, zeros_like(logits), 0
        column = values.reshape(-1, 1).astype(logits.dtype)
        loss = self._binary(logits, column)
        return float(loss), self._binary.backward(), known

    def _multiclass_head(self, name: str, logits: Array, values: Array, classes: int) -> tuple[float, Array, int]:
        whole = values == values.astype(np.int64) if values.dtype.kind == "f" else values == values
        bad = ~whole | (values < UNKNOWN) | (values >= classes)
        if bool(bad.any()):
            first = int(np.flatnonzero(to_device_like(bad, np.empty(0)))[0])
            raise ValueError(f"targets must hold class ids in [0, {classes}) or -1 (unknown) in column {name!r}; "
                             f"got {values[first].item()!r} in row {first}")
        labels = values.astype(np.int64)
        known_rows = labels != UNKNOWN
        known = int(known_rows.sum())
        if known == 0:
            return 0.0, zeros_like(logits), 0
        if known == labels.shape[0]:
            loss = self._multiclass(logits, labels)
            return float(loss), self._multiclass.backward(), known
        # The mean over the known rows only, its gradient scattered back; unknown rows get 0.
        loss = self._multiclass(logits[known_rows], labels[known_rows])
        grad = zeros_like(logits)
        grad[known_rows] = self._multiclass.backward()
        return float(loss), grad, known

    def backward(self, grad_out: float = 1.0) -> dict[str, Array]:  # type: ignore[override]
        """``{name: dloss/dlogits}`` of the last call, scaled by ``grad_out``."""
        if self._grads is None:
            raise RuntimeError("MultiHeadLoss.backward called before the loss was computed")
        if grad_out == 1.0:
            return dict(self._grads)
        return {name: grad * grad_out for name, grad in self._grads.items()}

    def extra_repr(self) -> str:
        heads = ", ".join(f"{name}={kind}" for name, kind in self.spec.items())
        if any(w != 1.0 for w in self.weights.values()):
            heads += ", weights=" + repr(self.weights)
        return heads
