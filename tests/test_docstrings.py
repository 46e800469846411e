"""help(nn.Module) shows real docstrings (issue 17, item 12): pydoc falls back to the comment
lines above a method without a docstring, so section comments used to show as method docs."""

from __future__ import annotations

import inspect
import pydoc

import pytest

from fastnn import nn


@pytest.mark.parametrize("cls", [nn.Module, nn.Parameter, nn.Sequential], ids=lambda c: c.__name__)
def test_every_method_has_its_own_docstring(cls):
    for name, value in vars(cls).items():
        if not inspect.isfunction(value) or (name.startswith("_") and not name.startswith("__")):
            continue
        if name in ("__eq__", "__ne__", "__hash__"):  # object's, documented by object
            continue
        assert inspect.getdoc(value), f"{cls.__name__}.{name} has no docstring"
        assert inspect.getcomments(value) is None or inspect.getdoc(value), name


def test_help_shows_no_code_comments():
    text = pydoc.render_doc(nn.Module, renderer=pydoc.plaintext)
    assert "# " not in text and "-----" not in text.replace("-" * 70, "")
    assert "Backpropagates through the most recent" in text  # Module.backward's docstring
    backward = inspect.getdoc(nn.Module.backward)
    assert "grad_out" in backward and "Returns dL/dx" in backward
