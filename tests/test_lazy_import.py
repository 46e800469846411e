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
LAZY = ["bench", "data", "metrics", "models", "onnx", "recipes", "reference", "report", "tasks", "train"]


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


def test_import_takes_under_a_third_of_a_second_of_cpu():
    # CPU time, not wall time: a loaded CI machine stretches the wall clock, not the work.
    # NumPy's own import is included; best of three runs.
    code = ("import time; t = time.process_time(); import fastnn; "
            "print(time.process_time() - t)")
    best = min(float(_run(code)) for _ in range(3))
    assert best < 0.3, f"import fastnn took {best:.3f} s of CPU"
