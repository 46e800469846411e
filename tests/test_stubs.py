"""Each list stated once: the op list (fastnn/_oplist.py) against what fastnn.ops and
fastnn.reference export, and the committed extension stubs against what scripts/gen_stubs.py
writes from the built extensions."""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import pytest

from fastnn import _oplist, ops, reference

ROOT = Path(__file__).resolve().parent.parent


def _load_gen_stubs():
    spec = importlib.util.spec_from_file_location("gen_stubs", ROOT / "scripts" / "gen_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_stubs = _load_gen_stubs()

PACKAGES = {"ops": (ops, _oplist.OPS), "reference": (reference, _oplist.REFERENCE_OPS)}


# --- the op list -------------------------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES)
def test_exports_are_the_op_list(package):
    module, names = PACKAGES[package]
    assert module.__all__ == list(names)
    missing = [n for n in names if not inspect.isfunction(getattr(module, n, None))]
    assert not missing, f"fastnn.{package} lacks listed ops {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_public_function_is_left_off_the_op_list(package):
    module, names = PACKAGES[package]
    public = {n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")}
    unlisted = sorted(public - set(names))
    assert not unlisted, f"fastnn.{package} exports {unlisted}, which fastnn/_oplist.py does not list"


def test_every_op_has_a_reference_except_the_listed_ones():
    without = {n for names in _oplist.OPS_WITHOUT_REFERENCE.values() for n in names}
    assert set(_oplist.OPS) - set(_oplist.REFERENCE_OPS) == without
    assert not without & set(vars(reference)), "an op listed as having no reference has one"


@pytest.mark.parametrize("package", PACKAGES)
def test_each_family_is_one_file(package):
    """Every op lives in the file its family names, and every family file is listed."""
    module, _ = PACKAGES[package]
    families = {**_oplist.OP_FAMILIES}
    if package == "ops":
        for family, names in _oplist.OPS_WITHOUT_REFERENCE.items():
            families[family] = families.get(family, ()) + names
    for family, names in families.items():
        for name in names:
            assert getattr(module, name).__module__ == f"fastnn.{package}.{family}", name
    files = {m.name for m in pkgutil.iter_modules(module.__path__) if not m.name.startswith("_")}
    assert files == set(families), f"fastnn.{package} files vs op families: {sorted(files ^ set(families))}"


# --- the extension stubs -----------------------------------------------------------------------


def _built(name):
    module = gen_stubs.load(name)
    if module is None:
        pytest.skip(f"fastnn.{name} is not built here (CI builds _cuda wherever nvcc is present)")
    if not gen_stubs.renders_pybind11_3(module):
        pytest.skip(f"fastnn.{name} was built with pybind11 < 3; the stubs are written in pybind11 3's notation")
    return module


@pytest.mark.parametrize("name", gen_stubs.MODULES)
def test_committed_stub_is_what_gen_stubs_writes(name):
    module = _built(name)
    path = gen_stubs.stub_path(name)
    assert path.exists(), f"{path.name} is missing: run scripts/gen_stubs.py"
    want, have = gen_stubs.render(module), path.read_text()
    diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), "committed", "generated"))
    assert not diff, f"{path.name} is out of date; run scripts/gen_stubs.py:\n{diff}"


@pytest.mark.parametrize("name", gen_stubs.MODULES)
def test_stub_is_valid_python_naming_every_function(name):
    module = _built(name)
    tree = ast.parse(gen_stubs.render(module))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert defined == {n for n in vars(module) if not n.startswith("__")}


def test_gen_stubs_check_mode_passes_on_the_committed_stubs(capsys):
    _built("_cpu")
    assert gen_stubs.main(["--check"]) == 0, capsys.readouterr().out
