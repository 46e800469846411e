"""fastnn.distributed without launching MPI: the sharded loader's rule, the bucket plan, the
containers' backward-done hook, SyncBatchNorm on one process (where it must be BatchNorm) and the
errors. tests/test_distributed_mpi.py runs the checks that need several ranks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import distributed as dist
from fastnn import nn, reference
from fastnn.data import DataLoader
from fastnn.nn.container import register_backward_done_hook


def _loaders(n: int, world: int, batch: int, **options) -> list[DataLoader]:
    x = np.arange(n, dtype=np.float32)[:, None]
    return [DataLoader(x=x, y=np.arange(n), batch_size=batch, shuffle=True, seed=4, prefetch=0, distributed=True,
                       rank=r, world_size=world, **options) for r in range(world)]


def _epoch_ids(loader: DataLoader) -> list[np.ndarray]:
    return [y for _, y in loader]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 5, 17, 30, 33])
def test_shards_cover_every_sample_exactly_once_per_epoch(world, n):
    # pad=False (evaluation): the shards partition the dataset, for sizes that do not divide.
    loaders = _loaders(n, world, 4, pad=False)
    for _ in range(2):  # each iter() is the next epoch, with a new order
        seen = [y for loader in loaders for y in _epoch_ids(loader)]
        assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(n))


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 5, 17, 30, 33])
def test_padding_repeats_the_start_of_the_order_and_drop_last_cuts_it(world, n):
    order = np.random.default_rng([4, 0, 0, 0]).permutation(n)  # the loader's epoch-0 order (loader.py's key)
    padded = [np.concatenate(_epoch_ids(l)) for l in _loaders(n, world, 3)]
    assert {len(p) for p in padded} == {-(-n // world)}  # every rank the same number of samples
    total = -(-n // world) * world
    expected = np.concatenate([order, np.resize(order, total - n)])  # PyTorch's DistributedSampler rule
    assert np.array_equal(np.stack(padded, axis=1).ravel(), expected)
    if n >= world:
        # Batches of 1, so that dropping the incomplete last batch (drop_last's other half) cuts nothing.
        kept = [np.concatenate(_epoch_ids(l)) for l in _loaders(n, world, 1, drop_last=True)]
        assert np.array_equal(np.sort(np.concatenate(kept)), np.sort(order[:n // world * world]))


@pytest.mark.parametrize("n", [64, 70])
def test_global_batches_are_the_single_process_batches(n):
    # Batch b of every rank, interleaved, is batch b of one process with a world-size-times batch.
    x = np.arange(n, dtype=np.float32)[:, None]
    single = [y for _, y in DataLoader(x=x, y=np.arange(n), batch_size=16, shuffle=True, seed=4, prefetch=0)]
    shards = [_epoch_ids(l) for l in _loaders(n, 2, 8)]
    assert len(shards[0]) == len(single)
    for b, batch in enumerate(single):
        merged = np.stack([shards[0][b], shards[1][b]], axis=1).ravel()
        assert np.array_equal(merged[:len(batch)], batch)  # the padded tail aside


def test_one_rank_is_the_plain_loader_augmentation_included():
    x = np.random.default_rng(0).standard_normal((10, 1, 4, 4)).astype(np.float32)
    noise = lambda batch, rng: batch + rng.standard_normal(batch.shape).astype(np.float32)  # noqa: E731
    plain = list(DataLoader(x=x, y=np.arange(10), batch_size=4, shuffle=True, seed=2, transform=noise))
    one = list(DataLoader(x=x, y=np.arange(10), batch_size=4, shuffle=True, seed=2, transform=noise,
                          distributed=True, rank=0, world_size=1))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(plain, one))


@pytest.mark.parametrize("options, exc, words", [
    ({"distributed": True, "rank": 2, "world_size": 2}, ValueError, "'rank' must be < world_size (2); got 2"),
    ({"distributed": True, "rank": 0, "world_size": 0}, ValueError, "'world_size' must be an int >= 1; got 0"),
    ({"distributed": True, "rank": 1}, ValueError, "give both 'rank' and 'world_size'"),
    ({"rank": 0, "world_size": 2}, ValueError, "apply with distributed=True only"),
    ({"distributed": True}, RuntimeError, "needs fastnn.distributed.init() first"),
])
def test_loader_rejects_bad_shard_arguments(options, exc, words):
    with pytest.raises(exc) as info:
        DataLoader(x=np.zeros((4, 1)), y=np.zeros(4), batch_size=2, **options)
    assert words in str(info.value) and "fastnn.data.DataLoader" in str(info.value)


def test_bucket_plan_takes_parameters_in_reverse_and_splits_by_size_and_dtype():
    sizes = [400, 40, 4000, 40, 40, 40]
    dtypes = [np.float32] * 5 + [np.float64]
    plan = dist.bucket_plan(sizes, dtypes, 100)
    assert plan == [[5], [4, 3, 2], [1, 0]]  # a dtype change closes a bucket; one closes at >= 100 bytes
    assert sorted(i for b in plan for i in b) == list(range(6))
    assert dist.bucket_plan(sizes, [np.float32] * 6, 10**9) == [[5, 4, 3, 2, 1, 0]]
    assert dist.bucket_plan([], [], 100) == []


def _net() -> nn.Sequential:
    block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU())
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Residual(block),
                         nn.Flatten(), nn.Linear(2 * 2 * 2, 3))


@pytest.mark.parametrize("params_only", [False, True])
def test_backward_done_hook_fires_after_each_layer_has_its_gradients(params_only):
    fastnn.manual_seed(0)
    model = _net()
    calls: list[tuple[nn.Module, bool]] = []
    for m in model.modules():
        register_backward_done_hook(m, lambda m: calls.append((m, all(p.grad is not None for p in m.parameters()))))
    try:
        model(np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32))
        grad = np.ones((2, 3), np.float32)
        model.backward_params(grad) if params_only else model.backward(grad)
    finally:
        for m in model.modules():
            register_backward_done_hook(m, None)
    order = [m for m, _ in calls]
    linear, residual, conv = model[5], model[3], model[0]
    # Every layer reported once, in backward order, and only when its gradients were there.
    assert order.index(linear) < order.index(residual.block[0]) < order.index(residual) < order.index(conv)
    assert len(order) == len(set(map(id, order)))
    assert all(ready for _, ready in calls)
    assert set(map(id, order)) >= {id(m) for m in model.modules() if m._parameters}


@pytest.mark.parametrize("shape", [(7, 3), (5, 3, 4), (3, 3, 5, 2)])
def test_sync_batchnorm_on_one_process_matches_the_reference(shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    layer = dist.SyncBatchNorm(3, momentum=0.2)
    layer.weight.data[...] = [0.5, 1.0, 2.0]
    layer.bias.data[...] = [0.1, 0.0, -1.0]
    y = layer(x)
    dx = layer.backward(g)
    ry, mean, inv_std, r_mean, r_var = reference.batch_norm_train(x, layer.weight.data, layer.bias.data, np.zeros(3),
                                                                  np.ones(3), momentum=0.2)
    rdx, rdw, rdb = reference.batch_norm_backward(g, x, layer.weight.data, mean, inv_std)
    # float32 outputs from float64 statistics: ~1e-7 relative error per element; 1e-5 leaves room
    # for the float32 normalisation kernel and the per-channel sums over up to 30 values.
    rel = lambda a, b: np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)  # noqa: E731
    for got, want in ((y, ry), (dx, rdx), (layer.weight.grad, rdw), (layer.bias.grad, rdb),
                      (layer.running_mean, r_mean), (layer.running_var, r_var)):
        assert rel(got, want) < 1e-5
    assert int(layer.num_batches_tracked) == 1


def test_sync_batchnorm_gradcheck_and_eval_mode():
    x = np.random.default_rng(2).standard_normal((4, 3, 3, 3))
    layer = dist.SyncBatchNorm(3)
    assert fastnn.gradcheck(layer, x)
    assert fastnn.gradcheck(layer.eval(), x)


def test_convert_sync_batchnorm_keeps_the_parameters_buffers_and_names():
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Residual(nn.Sequential(nn.BatchNorm2d(2))))
    before = model.state_dict()
    weight = model[1].weight
    converted = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], dist.SyncBatchNorm) and isinstance(model[2].block[0], dist.SyncBatchNorm)
    assert model[1].weight is weight
    after = model.state_dict()
    assert list(after) == list(before) and all(np.array_equal(after[k], before[k]) for k in before)
    assert isinstance(dist.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(3)), dist.SyncBatchNorm)


def test_sync_batchnorm_needs_two_values_per_channel_over_the_batch():
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected more than 1 value per channel when training; "
                                         r"got 1 over all ranks"):
        dist.SyncBatchNorm(2)(np.ones((1, 2), np.float32))


def test_process_group_calls_before_init_say_to_call_init():
    with pytest.raises(RuntimeError, match=r"fastnn.distributed.rank: the process group is not initialised; call "
                                           r"fastnn.distributed.init\(\) first"):
        dist.rank()
    with pytest.raises(RuntimeError, match="DistributedDataParallel: the process group is not initialised"):
        dist.DistributedDataParallel(nn.Linear(2, 2))
    assert not dist.is_initialized() and dist.is_main_process()


@pytest.mark.parametrize("args, exc, words", [
    (("not a module",), TypeError, "argument 'module' must be a fastnn.nn.Module; got str"),
    ((nn.Linear(2, 2), -1.0), ValueError, "argument 'bucket_mb' must be a finite number >= 0; got -1.0"),
    ((nn.Linear(2, 2), float("nan")), ValueError, "argument 'bucket_mb' must be a finite number >= 0; got nan"),
])
def test_ddp_rejects_bad_arguments(args, exc, words):
    with pytest.raises(exc) as info:
        dist.DistributedDataParallel(*args)
    assert "fastnn.distributed.DistributedDataParallel: " + words in str(info.value)


def test_importing_fastnn_distributed_does_not_import_mpi4py():
    root = str(Path(fastnn.__file__).resolve().parents[1])
    code = (f"import sys; sys.path.insert(0, {root!r}); import fastnn.distributed, fastnn.train, fastnn.data; "
            "print('mpi4py' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_public_api_is_documented():
    import inspect

    for name in dist.__all__:
        assert inspect.getdoc(getattr(dist, name)), name
    for cls in (dist.DistributedDataParallel, dist.SyncBatchNorm):
        for name, value in vars(cls).items():
            if (inspect.isfunction(value) or isinstance(value, classmethod)) and not name.startswith("_"):
                assert inspect.getdoc(value), f"{cls.__name__}.{name}"


class _TwinRankTransport:
    """Stands in for MPI: the other rank holds the same gradients, so a sum doubles them. Records
    when each bucket starts, relative to the layers' backward."""

    def __init__(self, events: list) -> None:
        self.events = events

    def empty(self, size, dtype, like):
        return np.empty(size, dtype=dtype)

    def start(self, buffer):
        self.events.append(("start", buffer.size))
        buffer *= 2
        return buffer.size

    def progress(self, requests):
        self.events.append(("progress", len(requests)))

    def wait(self, requests):
        self.events.append(("wait", len(requests)))


class _TwoRankComm:
    def Get_size(self):
        return 2

    def Get_rank(self):
        return 0

    def Bcast(self, array, root=0):
        pass


def test_ddp_buckets_start_during_backward_and_average(monkeypatch):
    # The bucket logic without MPI (the GPU's NCCL transport shares it): buckets start from the
    # backward-done hooks, in reverse parameter order, and the gradients come back averaged.
    from fastnn.distributed import ddp as ddp_module

    events: list = []
    monkeypatch.setattr(dist.group, "_comm", _TwoRankComm())
    monkeypatch.setattr(ddp_module, "_MpiTransport", lambda comm: _TwinRankTransport(events))
    fastnn.manual_seed(0)
    model = _net()
    reference_model = _net()
    reference_model.load_state_dict(model.state_dict())
    wrapped = dist.DistributedDataParallel(model, bucket_mb=40 / 2**20)  # 40-byte buckets: one per layer here
    x = np.random.default_rng(3).standard_normal((2, 1, 4, 4)).astype(np.float32)
    grad = np.random.default_rng(4).standard_normal((2, 3)).astype(np.float32)
    layers = [m for m in model.modules() if m._parameters]
    for m in layers:  # note each layer's backward among the bucket starts
        original = m.backward

        def noted(g, _m=m, _original=original):
            events.append(("layer", type(_m).__name__))
            return _original(g)

        object.__setattr__(m, "backward", noted)
    wrapped(x)
    wrapped.backward(grad)
    reference_model(x)
    reference_model.backward(grad)
    got = dict(model.named_parameters())
    for name, p in reference_model.named_parameters():
        assert np.array_equal(got[name].grad, p.grad), name  # (2 g) * 1/2 is exactly g
    starts = [i for i, e in enumerate(events) if e[0] == "start"]
    last_layer = max(i for i, e in enumerate(events) if e[0] == "layer")
    assert len(starts) == len(wrapped._buckets) == 3
    assert starts[0] < last_layer  # the first buckets went out while earlier layers still ran backward
    assert events[-1] == ("wait", len(wrapped._buckets))
    sizes = [e[1] for e in events if e[0] == "start"]
    assert sizes == [sum(p.size for p in layer.parameters()) for layer in (model[5], model[3].block[0], model[0])]
    assert wrapped.last_early_buckets == len(starts)


def test_ddp_under_the_readme_loop_with_a_deferred_input_gradient(monkeypatch):
    # model.backward on the outermost Sequential defers the first layer's input gradient: its
    # bucket must still start from the hooks before backward returns, and computing the deferred
    # gradient afterwards (which runs the leading layers' backward) must not touch the buckets.
    from fastnn.distributed import ddp as ddp_module

    events: list = []
    monkeypatch.setattr(dist.group, "_comm", _TwoRankComm())
    monkeypatch.setattr(ddp_module, "_MpiTransport", lambda comm: _TwinRankTransport(events))
    def net() -> nn.Sequential:  # a parameter-free layer before the first weighted one
        return nn.Sequential(nn.Identity(), *_net())

    fastnn.manual_seed(0)
    model, reference_model = net(), net()
    reference_model.load_state_dict(model.state_dict())
    wrapped = dist.DistributedDataParallel(model, bucket_mb=40 / 2**20)
    x = np.random.default_rng(3).standard_normal((2, 1, 4, 4)).astype(np.float32)
    grad = np.random.default_rng(4).standard_normal((2, 3)).astype(np.float32)
    wrapped(x)
    dx = wrapped.backward(grad)
    assert isinstance(dx, nn.DeferredGradient)
    assert wrapped.last_early_buckets == len(wrapped._buckets) == 3
    settled = list(events)
    reference_model(x)
    expected_dx = np.asarray(reference_model.backward(grad))
    assert np.array_equal(np.asarray(dx), expected_dx)
    assert events == settled
    got = dict(model.named_parameters())
    for name, p in reference_model.named_parameters():
        assert np.array_equal(got[name].grad, p.grad), name


def test_info_says_how_to_get_mpi_where_mpi4py_is_missing(monkeypatch):
    from fastnn.cli import info

    real = info.importlib.util.find_spec
    monkeypatch.setattr(info.importlib.util, "find_spec", lambda name, *a: None if name == "mpi4py" else real(name, *a))
    assert info._mpi_text(info._mpi_facts()) == "mpi4py is not installed (pip install 'fastnn[mpi]')"
