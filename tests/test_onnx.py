"""ONNX export (issue 14): every exportable layer alone and the four recipe models run in
onnxruntime at batch 1 and 3 (the dynamic batch) and give fastnn's eval-mode outputs; layers
with no ONNX form are refused by name; ``fastnn export`` of a trained run's checkpoint takes
images in [0, 1] and reproduces ``fastnn eval``.

Tolerance: outputs agree to 1e-4 relative (||onnx - fastnn|| / ||fastnn||). Both compute in
float32, but onnxruntime's kernels sum in another order (its own GEMM and convolution
blocking, Erf approximation, BatchNorm folded as scale and shift), which moves each output by a
few float32 ulps per layer; 1e-4 leaves room for that over resnet20's 20 layers while any
wrong attribute (a pad, a stride, count_include_pad, a transposed weight, a dropped bias or
running statistic) changes outputs by far more than 1e-2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import nn, recipes

ort = pytest.importorskip("onnxruntime", reason="the ONNX parity tests run the graphs in onnxruntime")
onnx = pytest.importorskip("onnx", reason="fastnn.onnx writes graphs with the onnx package")
import fastnn.onnx  # noqa: E402 (after the skips: the module itself is importable without onnx)
from conftest import require_digits

RTOL = 1e-4


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    return out


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm affine parameters and running statistics (fresh ones are 1 and 0,
    which would hide a swapped or dropped input of BatchNormalization)."""
    rng = np.random.default_rng(seed)
    for _, m in model.named_modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(0, 0.5, c)
            m.running_mean[...] = rng.normal(0, 0.5, c)
            m.running_var[...] = rng.uniform(0.3, 2.0, c)
    return model


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def _check_parity(model: nn.Module, shape: tuple[int, ...], tmp_path: Path, opset: int = fastnn.onnx.DEFAULT_OPSET,
                  normalize=None, scale: float = 1.0) -> Path:
    """Exports ``model`` and compares onnxruntime with fastnn's eval forward at batch 1 and 3;
    the model's mode is the one it had before the export."""
    training = [m.training for _, m in model.named_modules()]
    path = fastnn.onnx.export(model, tmp_path / "m.onnx", shape, opset=opset, normalize=normalize)
    assert [m.training for _, m in model.named_modules()] == training
    onnx.checker.check_model(str(path), full_check=True)
    rng = np.random.default_rng(1)
    model.eval()
    for batch in (1, 3):
        x = (scale * rng.standard_normal((batch,) + shape)).astype(np.float32)
        fed = x if normalize is None else ((x - np.reshape(normalize[0], (1, -1) + (1,) * (len(shape) - 1)))
                                          / np.reshape(normalize[1], (1, -1) + (1,) * (len(shape) - 1))).astype(np.float32)
        want = model(fed)
        got = _run_onnx(path, x)
        assert got.shape == want.shape
        assert _relative_error(got, want) < RTOL, (batch, _relative_error(got, want))
    return path


LAYERS = {
    "linear": (lambda: nn.Linear(7, 5), (7,)),
    "linear_no_bias": (lambda: nn.Linear(7, 3, bias=False), (7,)),
    "conv_stride_pad": (lambda: nn.Conv2d(3, 6, 3, stride=2, padding=1), (3, 9, 11)),
    "conv_groups_dilation": (lambda: nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1),
                                               groups=2, bias=False), (4, 10, 7)),
    "conv_depthwise": (lambda: nn.Conv2d(3, 3, 3, groups=3), (3, 5, 6)),
    "max_pool_padded": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 9, 7)),
    "max_pool_odd": (lambda: nn.MaxPool2d(2), (3, 7, 7)),
    # Padding counted as zeros in the divisor: windows at the border differ from
    # count_include_pad=0 by a third or more, so a wrong setting fails the tolerance.
    "avg_pool_padded": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 9, 7)),
    "avg_pool_rect": (lambda: nn.AvgPool2d((2, 3), stride=(1, 2)), (3, 5, 8)),
    "global_avg_pool": (lambda: nn.GlobalAvgPool2d(), (5, 3, 7)),
    "batch_norm2d": (lambda: nn.BatchNorm2d(3), (3, 5, 4)),
    "batch_norm1d": (lambda: nn.BatchNorm1d(7), (7,)),
    "batch_norm1d_sequence": (lambda: nn.BatchNorm1d(4), (4, 6)),
    "dropout": (lambda: nn.Dropout(0.5), (3, 4)),
    "identity": (lambda: nn.Identity(), (5,)),
    "flatten": (lambda: nn.Flatten(), (3, 4, 5)),
    "flatten_from_2": (lambda: nn.Flatten(start_dim=2), (3, 4, 5)),
    "relu": (lambda: nn.ReLU(), (2, 3, 5)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), (2, 3, 5)),
    "sigmoid": (lambda: nn.Sigmoid(), (2, 3, 5)),
    "tanh": (lambda: nn.Tanh(), (2, 3, 5)),
    "gelu": (lambda: nn.GELU(), (2, 3, 5)),
    "residual_identity": (lambda: nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))),
                          (3, 6, 5)),
    "residual_projection": (lambda: nn.Residual(nn.Conv2d(2, 4, 3, stride=2, padding=1),
                                                nn.Sequential(nn.Conv2d(2, 4, 1, stride=2, bias=False),
                                                              nn.BatchNorm2d(4))), (2, 7, 7)),
    "nested_sequential": (lambda: nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
                                                nn.Sequential(nn.Sequential(nn.Flatten()), nn.Linear(18, 3))),
                          (1, 5, 5)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_onnxruntime(name, tmp_path):
    build, shape = LAYERS[name]
    fastnn.manual_seed(3)
    layer = _randomize(build())
    layer.train()  # exported in its eval form whatever its mode (Dropout, BatchNorm)
    # Inputs of standard deviation 3 reach both sides of every activation's bend.
    _check_parity(layer, shape, tmp_path, scale=3.0)


@pytest.mark.parametrize("opset", [17, 20])
def test_gelu_both_forms(opset, tmp_path):
    # Below opset 20 GELU is composed from Erf; from 20 on it is the Gelu operator.
    path = _check_parity(nn.GELU(), (4, 9), tmp_path, opset=opset, scale=3.0)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (opset < 20)


@pytest.mark.skipif(not hasattr(nn, "L2Normalize"), reason="fastnn.nn.L2Normalize is not in this fastnn")
@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("shape", [(7,), (33,)])  # L2Normalize takes (N, D) rows
def test_l2_normalize(opset, shape, tmp_path):
    # ReduceL2 takes its axes as an attribute before opset 18 and as an input from 18 on.
    _check_parity(nn.L2Normalize(1e-3), shape, tmp_path, opset=opset)
    # A zero example: the norm is floored at eps, so the output is zero, not NaN.
    out = _run_onnx(tmp_path / "m.onnx", np.zeros((2,) + shape, dtype=np.float32))
    assert np.all(out == 0)


# Small images keep the models fast; lenet5 pads the 8x8 images up to 32 as for the digits.
MODELS = [("mlp", (1, 8, 8)), ("lenet5", (1, 8, 8)), ("simple_cnn", (3, 9, 9)), ("resnet20", (3, 8, 8))]


@pytest.mark.parametrize("name, shape", MODELS, ids=[m for m, _ in MODELS])
def test_model_matches_onnxruntime(name, shape, tmp_path):
    fastnn.manual_seed(0)
    model = _randomize(recipes.build_model(name, shape, 10))
    c = shape[0]
    normalize = ([0.1 * (i + 1) for i in range(c)], [0.2 + 0.1 * i for i in range(c)])
    path = _check_parity(model, shape, tmp_path, normalize=normalize)
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node[:2]] == ["Sub", "Div"]  # the normalisation comes first
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch" and not batch.HasField("dim_value")


def test_metadata_and_doc_string(tmp_path):
    fastnn.manual_seed(0)
    model = recipes.build_model("lenet5", (3, 8, 8), 4)
    classes = ["cat", "dog", "hedge hog", "émeu"]
    path = fastnn.onnx.export(model, tmp_path / "sub" / "m.onnx", (3, 8, 8),
                              normalize=([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]), metadata={"classes": classes, "run": "x"})
    loaded = onnx.load(str(path))
    props = {p.key: p.value for p in loaded.metadata_props}
    assert json.loads(props["classes"]) == classes and props["run"] == "x"
    assert props["input_contract"] == "float32 NCHW in [0,1]"
    assert props["channels"] == "3" and json.loads(props["input_size"]) == [8, 8]
    assert props["fastnn_version"] == fastnn.__version__
    assert json.loads(props["normalize_std"]) == pytest.approx([0.2, 0.25, 0.3])
    assert "in [0, 1] (pixels / 255)" in loaded.doc_string and "hedge hog" in loaded.doc_string
    assert loaded.opset_import[0].version == fastnn.onnx.DEFAULT_OPSET
    out = loaded.graph.output[0]
    assert out.name == "logits" and [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 4]


def test_export_between_forward_and_backward_leaves_the_backward_alone(tmp_path):
    # export runs a copy of the model; the model's cached input is still the caller's.
    layer = nn.Linear(3, 2)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    layer(x)
    fastnn.onnx.export(layer, tmp_path / "m.onnx", (3,))
    grad_out = np.ones((4, 2), dtype=np.float32)
    layer.backward(grad_out)
    np.testing.assert_allclose(layer.weight.grad, grad_out.T @ x, rtol=1e-6)


class MyLayer(nn.Module):
    def forward(self, x):
        return x * 2

    def backward(self, grad_out):
        return grad_out * 2


class ScaledLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize("model, fragment", [
    (nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), MyLayer()), "layer 3 (MyLayer)"),
    (nn.Sequential(nn.Flatten(), nn.Residual(nn.Sequential(MyLayer()))), "layer 1.block.0 (MyLayer)"),
    (nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.SoftmaxCrossEntropy()), "layer 2 (SoftmaxCrossEntropy)"),
    (nn.Sequential(nn.Flatten(), ScaledLinear(4, 3)), "subclasses fastnn.nn.Linear"),
    (MyLayer(), "the model (MyLayer)"),
])
def test_layer_without_onnx_form_is_refused_by_name(model, fragment, tmp_path):
    with pytest.raises(fastnn.onnx.ExportError, match="has no ONNX form") as info:
        fastnn.onnx.export(model, tmp_path / "m.onnx", (1, 2, 2))
    assert fragment in str(info.value) and "Linear" in str(info.value)  # and names what does export
    assert not (tmp_path / "m.onnx").exists()


def test_forward_replaced_on_the_instance_is_refused(tmp_path):
    relu = nn.ReLU()
    relu.forward = lambda x: x  # e.g. a debugging hook
    with pytest.raises(fastnn.onnx.ExportError, match="layer 1 \\(ReLU\\) has its forward replaced"):
        fastnn.onnx.export(nn.Sequential(nn.Linear(3, 3), relu), tmp_path / "m.onnx", (3,))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(input_shape=(1, 8, 8)), "does not take input_shape (1, 8, 8)"),
    (dict(input_shape=(0, 4)), "argument 'input_shape' must be one example's shape"),
    (dict(input_shape=(4,), opset=12), "argument 'opset' must be an int from 13"),
    (dict(input_shape=(4,), normalize=([0.1, 0.2], [1.0, 1.0])), "needs 1 or 4 (channels) values of mean"),
    (dict(input_shape=(4,), normalize=([0.1], [0.0])), "positive stds"),
    (dict(input_shape=(4,), output_name="input"), "must differ"),
])
def test_bad_arguments(kwargs, fragment, tmp_path):
    model = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(fastnn.onnx.ExportError, match="fastnn.onnx.export") as info:
        fastnn.onnx.export(model, tmp_path / "m.onnx", **kwargs)
    assert fragment in str(info.value)


def test_import_fastnn_does_not_import_onnx():
    code = "import sys, fastnn, fastnn.onnx; print('onnx' in sys.modules)"
    package_root = str(Path(fastnn.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {package_root!r}); {code}"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "fastnn\[onnx\]"'):
        fastnn.onnx.export(nn.Linear(2, 2), tmp_path / "m.onnx", (2,))


# The command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder of an MLP trained one epoch on 100 digits (40 test images), trained once for
    the module; the tests run in its parent folder, with the digits cut the same way."""
    require_digits()
    from fastnn.cli import main

    root = tmp_path_factory.mktemp("cli")
    full = fastnn.data.digits

    def small(seed: int = 0, test_fraction: float = 0.2):
        return tuple(fastnn.data.ArrayDataset(p.x[:n], p.y[:n], classes=p.classes)
                     for p, n in zip(full(seed=seed, test_fraction=test_fraction), (100, 40)))

    threads = fastnn.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(fastnn.data, "digits", small)
        # The run's pictures are not what these tests check, and drawing them takes seconds.
        patch.setattr(fastnn.report, "plot_curves", lambda *args, **kwargs: False)
        patch.setattr(fastnn.report, "plot_confusion", lambda *args, **kwargs: False)
        assert main(["train", "--model", "mlp", "--epochs", "1", "--threads", "1", "--out", "run", "--quiet"]) == 0
    fastnn.set_num_threads(threads)
    return root, small


@pytest.fixture
def in_run(trained_run, monkeypatch):
    root, small = trained_run
    monkeypatch.chdir(root)
    monkeypatch.setattr(fastnn.data, "digits", small)
    threads = fastnn.get_num_threads()
    yield root
    fastnn.set_num_threads(threads)  # `eval --threads` changes the process-wide setting


def test_cli_export_reproduces_eval(in_run, capsys):
    from fastnn.cli import main

    capsys.readouterr()
    assert main(["export", "run/checkpoint.fastnn", "out/model.onnx"]) == 0
    printed = capsys.readouterr().out
    assert "wrote out/model.onnx" in printed and "in [0, 1] (pixels / 255)" in printed
    assert main(["eval", "run/checkpoint.fastnn", "--threads", "1", "--json", "eval.json"]) == 0
    evaluated = json.loads(Path("eval.json").read_text())

    _, test_set = recipes.build_dataset("digits")
    assert 0.0 <= test_set.x.min() and test_set.x.max() <= 1.0  # what a deployer feeds: pixels scaled to [0, 1]
    logits = _run_onnx(Path("out/model.onnx"), test_set.x)
    confusion = fastnn.metrics.confusion_matrix(test_set.y, logits.argmax(axis=1), 10)
    assert confusion.tolist() == evaluated["confusion_matrix"]

    ck = fastnn.load("run/checkpoint.fastnn")
    config = ck["config"]
    model = recipes.build_model("mlp", (1, 8, 8), 10)
    fastnn.restore(ck, model, rng=False)
    model.eval()
    want = model(fastnn.data.Normalize(config["normalize_mean"], config["normalize_std"])(test_set.x))
    assert _relative_error(logits, want) < RTOL
    props = {p.key: p.value for p in onnx.load("out/model.onnx").metadata_props}
    assert json.loads(props["classes"]) == config["classes"] and props["model"] == "mlp"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastnn: error: ") and "Traceback" not in err[0]
    return err[0]


def test_cli_errors_are_one_line(in_run, capsys, monkeypatch):
    from fastnn.cli import main

    capsys.readouterr()
    assert main(["export", "missing.fastnn", "m.onnx"]) == 1
    assert "CHECKPOINT missing.fastnn: no such file" in _one_line_error(capsys)
    assert main(["export", "run/checkpoint.fastnn", "m.onnx", "--opset", "12"]) == 1
    assert "--opset must be an int from 13" in _one_line_error(capsys)
    assert main(["export", "run/checkpoint.fastnn", "run"]) == 1
    assert "OUTPUT run is a folder" in _one_line_error(capsys)

    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    assert main(["export", "run/checkpoint.fastnn", "m.onnx"]) == 1
    assert 'pip install "fastnn[onnx]"' in _one_line_error(capsys)
    assert not Path("m.onnx").exists()


def test_cli_export_of_an_embedding_model(in_run, capsys):
    # A verification run's checkpoint as `fastnn train --task verification` saves it (its
    # config, the embedding network's state), built from the trained run's config.
    from fastnn.cli import main, tasks

    config = dict(fastnn.load("run/checkpoint.fastnn")["config"], task="verification", embedding_dim=8)
    fastnn.manual_seed(5)
    model = tasks.task_for(config).model(config)
    fastnn.save("verify.fastnn", model, config=config)
    capsys.readouterr()
    assert main(["export", "verify.fastnn", "verify.onnx"]) == 0
    assert "output 'embedding': (batch, 8)" in capsys.readouterr().out
    _, test_set = recipes.build_dataset("digits")
    model.eval()
    want = model(fastnn.data.Normalize(config["normalize_mean"], config["normalize_std"])(test_set.x))
    session = ort.InferenceSession("verify.onnx", providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["embedding"]
    assert _relative_error(session.run(None, {"input": test_set.x})[0], want) < RTOL
    props = {p.key: p.value for p in onnx.load("verify.onnx").metadata_props}
    assert props["task"] == "verification" and "classes" not in props


def test_cli_export_refuses_the_attributes_task(in_run, capsys):
    # A multi-head model gives one array per attribute: refused by task, before it is built.
    # (The run's checkpoint relabelled: what export reads of it is the task.)
    from fastnn.cli import main

    ck = fastnn.load("run/checkpoint.fastnn")
    model = recipes.build_model("mlp", (1, 8, 8), 10)
    fastnn.save("attributes.fastnn", model, config=dict(ck["config"], task="attributes"))
    capsys.readouterr()
    assert main(["export", "attributes.fastnn", "attributes.onnx"]) == 1
    assert "--task attributes model has no ONNX export" in _one_line_error(capsys)
    assert not Path("attributes.onnx").exists()
