"""Every public subpackage named in the README is reachable after ``import fastnn``, loaded
lazily, with the import kept fast and without the CLI (issue 17, item 7). Each check runs in a
fresh interpreter, where nothing has been imported yet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import fastnn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = str(Path(fastnn.__file__).resolve().parents[1])
LAZY = ["bench", "data", "distributed", "metrics", "models", "onnx", "recipes", "reference", "report", "tasks",
        "train"]


def _run(code: str) -> str:
    env_code = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); " + code
    out = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_readme_names_are_reachable_after_import_fastnn():
    # `fastnn.<name>` in backticks: the API the README tells users about.
    names = sorted(set(re.findall(r"`fastnn\.(\w+)", (ROOT / "README.md").read_text())))
    assert {"models", "metrics", "train", "data", "bench", "reference"} <= set(names)
    got = json.loads(_run(f"import json, fastnn; print(json.dumps({{n: hasattr(fastnn, n) for n in {names!r}}}))"))
    assert got == {n: True for n in names}


def test_subpackages_load_lazily_and_the_cli_never():
    loaded = json.loads(_run(
        "import json, sys, fastnn; "
        f"before = [m for m in {['fastnn.' + n for n in LAZY] + ['fastnn.cli']!r} if m in sys.modules]; "
        "fastnn.models.lenet5; from fastnn import metrics; import fastnn.train; "
        "print(json.dumps([before, 'fastnn.models' in sys.modules, 'fastnn.cli' in sys.modules, "
        "sorted(n for n in " + repr(LAZY) + " if n in dir(fastnn))]))"
    ))
    before, models_loaded, cli_loaded, listed = loaded
    assert before == []  # nothing beyond the core at import time
    assert models_loaded and not cli_loaded
    assert listed == LAZY  # dir(fastnn) shows them before they load
    assert set(LAZY) <= set(fastnn.__all__)


def test_unknown_attribute_is_still_an_attribute_error():
    assert _run("import fastnn\ntry:\n    fastnn.no_such_thing\nexcept AttributeError as e:\n    print(e)") == \
        "module 'fastnn' has no attribute 'no_such_thing'"


# Modules that make an import slow and that the core never needs at import time: the CLI's
# argument parser, process and network machinery, package metadata (which loads the email
# package), and every optional extra. The import's time is measured by
# benchmarks/bench_import.py, not here: a timed assertion fails on a busy CI machine.
HEAVY = ["argparse", "subprocess", "socket", "importlib.metadata", "email", "urllib.request",
         "concurrent.futures", "tqdm", "matplotlib", "sklearn", "PIL", "torch", "cupy",
         "onnx", "onnxruntime", "mpi4py", "fastnn._cuda"]


def test_import_loads_no_heavy_module():
    loaded = json.loads(_run(
        "import json, sys, fastnn; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    ))
    assert loaded == [], f"import fastnn loads {loaded}"
