"""Child processes for tests/test_crash_safety.py (killed with SIGKILL at random moments).

    python crash_worker.py save-loop CHECKPOINT   # saves forever; each save's weights all equal its number
    python crash_worker.py train CHECKPOINT OUT   # fit() with a checkpoint per epoch, resuming from it if
                                                  # present; writes the final weights to OUT (.npz)

Training is deterministic for a given seed and thread count (OMP_NUM_THREADS is set by the
test), so a run killed and resumed any number of times must end with the same bits as one that
never stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import fastnn
from fastnn import data, nn, optim
from fastnn.optim import lr


def save_loop(checkpoint: Path) -> None:
    # About 4 MB per file, so a kill often lands in the middle of writing it.
    model = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 10))
    for i in range(1, 1_000_000):
        for p in model.parameters():
            p.data[...] = i
        fastnn.save(checkpoint, model, step=i)
        print(f"saved {i}", flush=True)


def synthetic(n: int = 256, seed: int = 0) -> data.ArrayDataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.random((n, 1, 8, 8), dtype=np.float32) * 0.5
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, :, 4 * r:4 * r + 4, 4 * col:4 * col + 4] += 0.5
    return data.ArrayDataset(x, y)


def train(checkpoint: Path, out: Path, epochs: int = 12) -> None:
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout(0.1), nn.Flatten(), nn.Linear(64, 4))
    loader = data.DataLoader(synthetic(), batch_size=16, shuffle=True, transform=data.RandomHorizontalFlip())
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = lr.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    resume = checkpoint if checkpoint.exists() else None
    fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), opt, loader, epochs, scheduler=schedule,
                     checkpoint=checkpoint, resume_from=resume, quiet=True,
                     callbacks=[lambda epoch, record: print(f"epoch {epoch}", flush=True)])
    np.savez(out, **{k: np.asarray(v) for k, v in model.state_dict().items()})


if __name__ == "__main__":
    if sys.argv[1] == "save-loop":
        save_loop(Path(sys.argv[2]))
    else:
        train(Path(sys.argv[2]), Path(sys.argv[3]))
