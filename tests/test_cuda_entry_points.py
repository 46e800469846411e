"""The ways into the GPU that do not need one to be checked: on a machine without a usable GPU,
``--device cuda``, ``DataLoader(device="cuda")``, ``fit``/``evaluate(device="cuda")`` fail at
once with one clear line naming the entry point and the reason, and ``fastnn info`` says what
the CUDA side is; and the DataLoader's asynchronous host-to-GPU feed, driven through a stand-in
for CuPy that records every stream operation, stages, copies and orders batches as documented
(pinned slots reused only after their copy finished, the copy of batch k + 1 queued before
batch k is handed out, compute waiting on each copy, and a loop left early by break or exception
waiting for the copy still in flight). With a GPU, tests/cuda runs the real thing."""

from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

import fastnn
from fastnn import cuda, data, nn, optim
from fastnn.cli import main
from fastnn.cuda import _arch_text

needs_no_gpu = pytest.mark.skipif(cuda.is_available(), reason="a GPU is present: tests/cuda covers it")


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@needs_no_gpu
@pytest.mark.parametrize("command", [["train", "--model", "mlp"], ["eval", "no-such-checkpoint"]])
def test_cli_device_cuda_without_gpu_is_one_line(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--device", "cuda"]) == 1
    line = _one_line_error(capsys, "--device cuda", "CUDA backend is not available", cuda.unavailable_reason())
    assert "no-such-checkpoint" not in line  # checked before anything is read
    assert not (tmp_path / "runs").exists()


def test_cli_device_must_name_a_device(capsys):
    assert main(["train", "--device", "gpu"]) == 2
    _one_line_error(capsys, "--device", "cpu, cuda or cuda:<index>", "'gpu'")


@needs_no_gpu
def test_loader_fit_evaluate_refuse_cuda_without_gpu():
    ds = data.ArrayDataset(np.zeros((8, 1, 4, 4), np.float32), np.zeros(8, np.int64), classes=["a", "b"])
    with pytest.raises(RuntimeError, match=r"fastnn\.data\.DataLoader\(device='cuda'\): the CUDA backend is not available"):
        data.DataLoader(ds, 4, device="cuda")
    with pytest.raises(ValueError, match="DataLoader: argument 'device' must be 'cpu', 'cuda' or 'cuda:<index>'"):
        data.DataLoader(ds, 4, device="tpu")
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loader = data.DataLoader(ds, 4)
    with pytest.raises(RuntimeError, match=r"fastnn\.train\.fit\(device='cuda'\): the CUDA backend is not available"):
        fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), loader, 1,
                         device="cuda", quiet=True)
    with pytest.raises(RuntimeError, match=r"fastnn\.train\.evaluate\(device='cuda:1'\)"):
        fastnn.train.evaluate(model, loader, device="cuda:1")
    assert isinstance(model[1].weight.data, np.ndarray)  # nothing moved


def test_fit_and_evaluate_on_cpu_device_match_the_default():
    rng = np.random.default_rng(0)
    ds = data.ArrayDataset(rng.standard_normal((32, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, 32),
                           classes=["a", "b", "c"])
    results = []
    for device in (None, "cpu"):
        fastnn.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        history = fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1),
                                   data.DataLoader(ds, 8, shuffle=True, seed=1), 2, quiet=True, device=device)
        result = fastnn.train.evaluate(model, data.DataLoader(ds, 8), nn.SoftmaxCrossEntropy(), device=device)
        results.append((history["train_loss"], result["accuracy"], result["loss"], model[1].weight.data.copy()))
    assert results[0][:3] == results[1][:3]
    np.testing.assert_array_equal(results[0][3], results[1][3])


def test_info_describes_the_cuda_side(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    rows = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    facts = cuda.info()
    backend = rows["CUDA backend"].strip()
    if not facts["built"]:
        assert backend.startswith("not built")
        return
    assert backend.startswith("built for sm_") and f"CUDA runtime {facts['runtime_version']}" in backend
    if facts["devices"]:
        gpu = facts["devices"][0]
        assert gpu["name"] in rows["GPU 0"] and "compute capability" in rows["GPU 0"] and "GiB" in rows["GPU 0"]
    else:
        assert rows["GPU"].strip().startswith("none (") and facts["reason"] in rows["GPU"]


def test_arch_text():
    assert _arch_text("90-real") == "sm_90"
    assert _arch_text("120") == "sm_120 + PTX"
    assert _arch_text("90-virtual") == "PTX 90"
    assert _arch_text("native") == "native"


# ---- the asynchronous feed, through a recording stand-in for CuPy ----------------------------

class _Log(list):
    def add(self, *event):
        self.append(event)


def _fake_cupy(log: _Log) -> types.ModuleType:
    """Just the CuPy surface fastnn.data.device_feed uses; every stream operation is logged."""

    class Event:
        count = 0

        def __init__(self, stream):
            Event.count += 1
            self.name, self.stream = f"e{Event.count}", stream

        def synchronize(self):
            log.add("sync", self.name)

    class Stream:
        def __init__(self, name="copy", non_blocking=False):
            self.name, self.non_blocking = name, non_blocking

        def record(self):
            event = Event(self)
            log.add("record", self.name, event.name)
            return event

        def wait_event(self, event):
            log.add("wait", self.name, event.name)

    compute = Stream("compute")

    class DevicePointer:
        def __init__(self, array):
            self.array = array

        def copy_from_host_async(self, src, nbytes, stream):
            assert nbytes == self.array.nbytes
            ctypes.memmove(self.array.ctypes.data, src, nbytes)
            log.add("copy", stream.name, self.array.shape)

    class DeviceArray:
        def __init__(self, shape, dtype):
            self.host = np.full(shape, 255, dtype=dtype)  # garbage until copied
            self.data = DevicePointer(self.host)
            self.shape, self.dtype = self.host.shape, self.host.dtype

    class Device:
        def __init__(self, index=None):
            self.index = index

        def __enter__(self):
            log.add("device", self.index)

        def __exit__(self, *exc):
            return False

    def alloc_pinned_memory(nbytes):
        log.add("pin", nbytes)
        return bytearray(nbytes)

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(Stream=Stream, get_current_stream=lambda: compute, Device=Device,
                                      alloc_pinned_memory=alloc_pinned_memory)
    fake.empty = lambda shape, dtype: DeviceArray(shape, dtype)
    return fake


def test_device_feed_orders_copies_as_documented(monkeypatch):
    from fastnn.data.device_feed import to_gpu_async

    log = _Log()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(log))
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((n, 1, 3, 3)).astype(np.float32), rng.integers(0, 9, n)) for n in (4, 4, 4, 2)]
    handed = []
    for k, (x, y) in enumerate(to_gpu_async(iter(batches))):
        log.add("handed", k)
        handed.append((x.host.copy(), y.host.copy()))
    for (x, y), (hx, hy) in zip(batches, handed):
        np.testing.assert_array_equal(hx, x)
        np.testing.assert_array_equal(hy, y)

    copies = [i for i, e in enumerate(log) if e[0] == "copy"]
    assert len(copies) == 2 * len(batches) and all(log[i][1] == "copy" for i in copies)  # never on compute
    hands = [log.index(("handed", k)) for k in range(len(batches))]
    for k, hand in enumerate(hands):
        # batch k's two copies, and batch k + 1's, are queued before batch k is handed out
        assert copies[2 * k + 1] < hand
        if k + 1 < len(batches):
            assert copies[2 * k + 3] < hand
        # the compute stream waited on the event recorded after batch k's copies
        record = next(e for e in log[copies[2 * k + 1]:] if e[0] == "record" and e[1] == "copy")
        assert ("wait", "compute", record[2]) in log[:hand]
    # each copy stream batch first waits for the compute stream (memory reuse by CuPy's pool)
    first_copy = copies[0]
    assert any(e[0] == "wait" and e[1] == "copy" for e in log[:first_copy])
    # two pinned slots, allocated once each; a slot is synchronised before its reuse
    assert [e[0] for e in log].count("pin") == 2
    syncs = [i for i, e in enumerate(log) if e[0] == "sync"]
    assert len(syncs) == len(batches) - 2 and all(s < copies[2 * (k + 2)] for k, s in enumerate(syncs))


def _consume_until(log: _Log, stop_after: int, how: str) -> None:
    """Takes batches from to_gpu_async until batch ``stop_after`` and then leaves the loop by
    ``how``: "break" or an exception raised in the loop body (as fit's NonFiniteLossError is)."""
    from fastnn.data.device_feed import to_gpu_async

    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), rng.integers(0, 9, 4)) for _ in range(5)]

    class Stop(Exception):
        pass

    try:
        for k, _ in enumerate(to_gpu_async(iter(batches))):
            log.add("handed", k)
            if k == stop_after:
                if how == "break":
                    break
                raise Stop
    except Stop:
        pass
    log.add("left")


@pytest.mark.parametrize("how", ["break", "exception"])
@pytest.mark.parametrize("stop_after", [0, 2])
def test_device_feed_waits_for_the_copy_in_flight_when_abandoned(monkeypatch, how, stop_after):
    # When the loop stops at batch k, batch k + 1's copy has been queued and never waited on:
    # closing the feed must wait for it before the arrays and pinned slot can be reused.
    log = _Log()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(log))
    _consume_until(log, stop_after, how)
    handed = log.index(("handed", stop_after))
    # the event recorded on the copy stream after batch k + 1's copies, which came before batch k
    # was handed out
    copies = [i for i, e in enumerate(log) if e[0] == "copy"]
    in_flight = next(e[2] for e in log[copies[2 * stop_after + 3]:] if e[0] == "record" and e[1] == "copy")
    assert ("wait", "compute", in_flight) not in log  # never handed out, so compute never waited
    assert log.index(("sync", in_flight)) in range(handed, log.index(("left",)))
    assert ("handed", stop_after + 1) not in log and len(copies) == 2 * (stop_after + 2)


def test_device_feed_finished_epoch_waits_for_nothing_more(monkeypatch):
    log = _Log()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(log))
    _consume_until(log, -1, "break")  # runs to the end
    last = log.index(("handed", 4))
    assert not any(e[0] == "sync" for e in log[last:])


def test_loader_on_cuda_yields_the_cpu_batches(monkeypatch):
    log = _Log()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(log))
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    rng = np.random.default_rng(1)
    ds = data.ArrayDataset(rng.standard_normal((10, 1, 4, 4)).astype(np.float32), rng.integers(0, 2, 10),
                           classes=["a", "b"])
    flip = data.RandomHorizontalFlip()
    cpu = data.DataLoader(ds, 4, shuffle=True, seed=3, transform=flip)
    gpu = data.DataLoader(ds, 4, shuffle=True, seed=3, transform=flip, device="cuda:0")
    assert "device='cuda:0'" in repr(gpu)
    got = list(gpu)
    want = list(cpu)
    assert len(got) == len(want) == 3
    for (gx, gy), (x, y) in zip(got, want):
        np.testing.assert_array_equal(gx.host, x)
        np.testing.assert_array_equal(gy.host, y)
    assert ("device", 0) in log
