"""The hot path compiled by mypyc (flowviz/native.py, setup.py): in use here, and never stale.

That compiled and Python modules give the same output on every sample capture and the fuzz corpus
is tests/unit/test_gcuntrack.py's comparison (FLOWVIZ_PURE_PYTHON=1 switches off both C parts)."""

from __future__ import annotations

import importlib.machinery
import json
import sys

from flowviz import native


def test_the_hot_path_is_compiled_here():
    assert set(native.status().values()) == {"compiled"}, "scripts/setup compiles flowviz/native.py's MODULES"
    assert all(native.in_use().values())


def _package(tmp_path, monkeypatch, source: str, built_from: str | None, ext: bool = True):
    """A package directory with decode.py, maybe a compiled decode beside it, and a manifest."""
    pkg = tmp_path / "flowviz"
    pkg.mkdir(exist_ok=True)
    py = pkg / "decode.py"
    if built_from is not None:   # the manifest as setup.py writes it, from the source at build time
        py.write_text(built_from)
        (pkg / native.MANIFEST).write_text(json.dumps({"flowviz.decode": native.source_hash(str(py))}))
    py.write_text(source)
    so = pkg / ("decode" + importlib.machinery.EXTENSION_SUFFIXES[0])
    if ext:
        so.write_bytes(b"not really a library")
    elif so.exists():
        so.unlink()
    monkeypatch.setattr(native, "_HERE", str(pkg))
    monkeypatch.setattr(native, "MODULES", ("flowviz/decode.py",))
    return pkg


def test_a_module_compiled_from_its_source_is_used_an_edited_one_runs_from_its_source(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, "X = 1\n", built_from="X = 1\n")
    assert native.status() == {"flowviz.decode": "compiled"}
    _package(tmp_path, monkeypatch, "X = 2\n", built_from="X = 1\n")   # edited after the build
    assert native.status() == {"flowviz.decode": "stale"}
    _package(tmp_path, monkeypatch, "X = 2\n", built_from=None)   # built without mypyc: no manifest
    (tmp_path / "flowviz" / native.MANIFEST).unlink()
    assert native.status() == {"flowviz.decode": "stale"}
    _package(tmp_path, monkeypatch, "X = 2\n", built_from="X = 1\n", ext=False)   # never compiled
    assert native.status() == {"flowviz.decode": "python"}


def test_the_finder_imports_the_source_of_a_stale_module(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, "X = 2\n", built_from="X = 1\n")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    native.install()
    finder = sys.meta_path[0]
    spec = finder.find_spec("flowviz.decode")
    assert spec is not None and spec.origin == str(pkg / "decode.py")
    assert finder.find_spec("flowviz.model") is None   # not stale, not its business


def test_pure_python_asked_for_imports_every_compiled_module_from_its_source(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, "X = 1\n", built_from="X = 1\n")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    before = len(sys.meta_path)
    native.install()
    assert len(sys.meta_path) == before   # compiled and current: the compiled one is imported
    monkeypatch.setenv("FLOWVIZ_PURE_PYTHON", "1")
    native.install()
    assert sys.meta_path[0].find_spec("flowviz.decode").origin.endswith("decode.py")
