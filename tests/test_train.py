"""fit / evaluate: learning on real data, exact resume from a checkpoint, the non-finite loss
stop, callbacks and output."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import data, nn, optim
from fastnn.optim import lr
from fastnn.random import default_generator
from fastnn.train import History, NonFiniteLossError, evaluate, fit
from conftest import require_digits


class Jitter(nn.Module):
    """Adds noise from fastnn's global generator in training mode, so that exact resume also
    depends on the global RNG state being restored."""

    def forward(self, x):
        if not self.training:
            return x
        return x + default_generator().normal(0.0, 0.01, size=x.shape).astype(x.dtype)

    def backward(self, grad_out):
        return grad_out


def synthetic(n: int = 96, seed: int = 0) -> data.ArrayDataset:
    """Four classes of 1x4x4 images: class c brightens quadrant c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.random((n, 1, 4, 4), dtype=np.float32) * 0.5
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, :, 2 * r:2 * r + 2, 2 * col:2 * col + 2] += 0.5
    return data.ArrayDataset(x, y)


def run(kind: str, epochs: int = 3):
    """A fresh model, optimizer, loader and schedule, all seeded from fastnn.manual_seed."""
    fastnn.manual_seed(0)
    model = nn.Sequential(Jitter(), nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4))
    loader = data.DataLoader(synthetic(), batch_size=16, shuffle=True,
                             transform=data.Compose([data.RandomCrop(4, 1), data.RandomHorizontalFlip()]))
    if kind == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
        schedule = lr.CosineAnnealingLR(opt, T_max=epochs * len(loader), warmup_steps=3)
    else:
        opt = optim.AdamW(model.parameters(), lr=0.01)
        schedule = lr.OneCycleLR(opt, max_lr=0.02, total_steps=epochs * len(loader))
    return model, opt, loader, schedule


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_resume_is_bitwise_exact(tmp_path, kind):
    model, opt, loader, schedule = run(kind)
    straight = fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 3, scheduler=schedule, quiet=True)

    model2, opt2, loader2, schedule2 = run(kind)
    stop_after_first = lambda epoch, record: epoch == 1  # noqa: E731
    fit(model2, nn.SoftmaxCrossEntropy(), opt2, loader2, 3, scheduler=schedule2, callbacks=[stop_after_first],
        checkpoint=tmp_path / "ck.fastnn", quiet=True)
    # A new process would start from scratch: rebuild everything under another seed, then resume.
    fastnn.manual_seed(123)
    model3, opt3, loader3, schedule3 = run(kind)
    fastnn.manual_seed(456)
    resumed = fit(model3, nn.SoftmaxCrossEntropy(), opt3, loader3, 3, scheduler=schedule3,
                  resume_from=tmp_path / "ck.fastnn", checkpoint=tmp_path / "ck.fastnn", quiet=True)
    for (name, a), b in zip(model.state_dict().items(), model3.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} differs after resuming")
    assert len(resumed) == 3 and resumed["train_loss"] == straight["train_loss"]
    assert fastnn.load(tmp_path / "ck.fastnn")["epoch"] == 3


def test_fit_learns_real_digits():
    require_digits()
    train, test = data.digits()
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = data.DataLoader(train, 32, shuffle=True, seed=0)
    history = fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 8, val_loader=data.DataLoader(test, 256), quiet=True)
    # A 64-64-10 MLP reaches about 96-97% on this split; 92% leaves room for seeds and threads.
    assert history[-1]["val_accuracy"] > 0.92
    assert history["train_loss"][-1] < history["train_loss"][0]
    result = evaluate(model, data.DataLoader(test, 100), nn.SoftmaxCrossEntropy(), k=3)
    assert result["accuracy"] == pytest.approx(history[-1]["val_accuracy"])
    assert result["confusion_matrix"].sum() == len(test) == result["images"]
    assert result["top_k_accuracy"] >= result["accuracy"] and model.training  # mode restored


class NanAt:
    """Cross-entropy that reports NaN at one call, like a diverging run."""

    def __init__(self, call: int) -> None:
        self.inner, self.call, self.calls = nn.SoftmaxCrossEntropy(), call, 0

    def __call__(self, logits, y):
        self.calls += 1
        loss = self.inner(logits, y)
        return float("nan") if self.calls == self.call else loss

    def backward(self):
        return self.inner.backward()


def test_non_finite_loss_names_epoch_step_and_checkpoint(tmp_path):
    model, opt, loader, _ = run("sgd")
    steps = len(loader)
    with pytest.raises(NonFiniteLossError, match=rf"nan at epoch 2, step 3 of {steps}.*ck.fastnn \(saved after epoch 1\)"):
        fit(model, NanAt(steps + 3), opt, loader, 3, checkpoint=tmp_path / "ck.fastnn", quiet=True)
    model, opt, loader, _ = run("sgd")
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 2 .*no checkpoint was saved"):
        fit(model, NanAt(2), opt, loader, 3, quiet=True)


def test_non_finite_loss_says_what_was_non_finite(tmp_path):
    """Issue 17 item 10: the error tells bad inputs from diverged weights from a bad loss, as
    text and as attributes, and only advises a lower learning rate where that could help."""
    model, opt, loader, _ = run("sgd")
    with pytest.raises(NonFiniteLossError) as info:  # finite inputs and outputs, NaN loss
        fit(model, NanAt(2), opt, loader, 3, quiet=True)
    e = info.value
    assert (e.source, e.epoch, e.step, e.steps, e.checkpoint, e.saved_epoch) == ("loss", 1, 2, len(loader), None, None)
    assert "the loss itself was not" in str(e) and np.isnan(e.loss)

    bad = synthetic()
    bad.x[5, 0, 1, 1] = np.nan
    model, opt, _, _ = run("sgd")
    with pytest.raises(NonFiniteLossError, match=r"inputs hold NaN or infinite values .*Fix the data\.$") as info:
        fit(model, nn.SoftmaxCrossEntropy(), opt, data.DataLoader(bad, batch_size=16), 2, quiet=True)
    assert info.value.source == "inputs" and info.value.step == 1 and "learning rate" not in str(info.value)

    model, opt, loader, _ = run("sgd")
    model[2].weight.data[...] = np.inf  # diverged weights
    with pytest.raises(NonFiniteLossError, match="outputs became non-finite on finite inputs.*lower learning rate"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 2, quiet=True)

    model, opt, loader, _ = run("sgd")
    steps = len(loader)
    with pytest.raises(NonFiniteLossError) as info:
        fit(model, NanAt(steps + 1), opt, loader, 3, checkpoint=tmp_path / "ck.fastnn", quiet=True)
    assert info.value.checkpoint == tmp_path / "ck.fastnn" and info.value.saved_epoch == 1


def test_output_lines_and_quiet(capsys):
    model, opt, loader, _ = run("sgd", epochs=2)
    fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 2, val_loader=loader, progress=False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss ") and "val_acc" in lines[1] and "img/s" in lines[1]
    fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 1, quiet=True)
    assert capsys.readouterr() == ("", "")


def test_progress_bar_shows_loss_accuracy_rate(capsys):
    pytest.importorskip("tqdm")
    model, opt, loader, _ = run("sgd", epochs=1)
    fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 1, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "acc=" in err and "img/s=" in err


def test_history_and_arguments():
    h = History([{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}])
    assert h["loss"] == [2.0, 1.0] and h[-1]["epoch"] == 2 and len(h) == 2
    h2 = History()
    h2.load_state_dict(h.state_dict())
    assert h2.records == h.records
    model, opt, loader, _ = run("sgd")
    with pytest.raises(ValueError, match="'epochs'"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 0)
    with pytest.raises(ValueError, match="'scheduler_step'"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 1, scheduler_step="sometimes")


def _scripted_evaluate(monkeypatch, values):
    """fit's per-epoch evaluation returns ``values`` in turn (loss; accuracy = 1 - loss)."""
    script = iter(values)

    def fake(model, loader, loss_fn=None, k=3, device=None):
        v = next(script)
        return {"loss": v, "accuracy": 1 - v, "top_k_accuracy": 1.0, "seconds": 0.0}

    monkeypatch.setattr(fastnn.train, "evaluate", fake)


def test_early_stop_and_keep_best(tmp_path, monkeypatch, capsys):
    """Issue 17 item 15: patience counts epochs without a better monitor value; the best epoch is
    saved to best_checkpoint and its weights are back in the model at the end."""
    _scripted_evaluate(monkeypatch, [0.9, 0.5, 0.6, 0.7, 0.4, 0.3])
    model, opt, loader, _ = run("sgd")
    snapshots = {}
    history = fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 6, val_loader=loader, early_stop=2,
                  best_checkpoint=tmp_path / "best.fastnn", restore_best=True, progress=False,
                  callbacks=[lambda epoch, record: snapshots.__setitem__(epoch, model.state_dict())])
    out = capsys.readouterr().out
    assert len(history) == 4 and history.stopped_early and history.best_epoch("val_loss") == 2
    assert "early stop: val_loss has not improved for 2 epochs (best: epoch 2)" in out
    assert "(best)" in out.splitlines()[1]
    best = fastnn.load(tmp_path / "best.fastnn")
    assert best["epoch"] == 2
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snapshots[2][name], err_msg=name)
        np.testing.assert_array_equal(best["model"][name], snapshots[2][name], err_msg=name)
    assert not np.array_equal(snapshots[4]["2.weight"], snapshots[2]["2.weight"])


def test_monitor_accuracy_is_maximised_and_resume_counts_patience(tmp_path, monkeypatch):
    _scripted_evaluate(monkeypatch, [0.5, 0.2, 0.3, 0.1])
    model, opt, loader, _ = run("sgd")
    history = fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 3, val_loader=loader, monitor="val_accuracy",
                  early_stop=1, checkpoint=tmp_path / "ck.fastnn", quiet=True)
    # accuracy 0.5, 0.8, 0.7: epoch 2 is best; the run ended at its last epoch, not early
    assert history.best_epoch("val_accuracy") == 2 and history.best_epoch("val_loss") == 2 and not history.stopped_early
    # A run stopped early stays stopped when resumed with a longer budget.
    _scripted_evaluate(monkeypatch, [0.5, 0.6, 0.7])
    model, opt, loader, _ = run("sgd")
    fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 3, val_loader=loader, early_stop=1,
        checkpoint=tmp_path / "stop.fastnn", quiet=True)
    model, opt, loader, _ = run("sgd")
    resumed = fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 5, val_loader=loader, early_stop=1,
                  resume_from=tmp_path / "stop.fastnn", quiet=True)
    assert len(resumed) == 2 and resumed.stopped_early


def test_named_evaluation_set_and_fit_arguments(capsys):
    model, opt, loader, _ = run("sgd", epochs=1)
    history = fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 1, val_loader=loader, val_name="test", progress=False)
    assert "test_acc" in capsys.readouterr().out and history[-1]["test_accuracy"] is not None
    with pytest.raises(ValueError, match="needs a val_loader"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 1, early_stop=2)
    with pytest.raises(ValueError, match="'early_stop'"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 1, val_loader=loader, early_stop=0)
    with pytest.raises(ValueError, match="not in the epoch's record"):
        fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 1, val_loader=loader, monitor="val_f1", early_stop=2,
            quiet=True)
