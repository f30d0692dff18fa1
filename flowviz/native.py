"""Which modules run compiled, and the switch back to their Python source.

``setup.py`` compiles :data:`MODULES` with mypyc when mypy and a C compiler are there (scripts/setup
has both), and writes ``flowviz/_native.json``: each module's source hash at the time. The compiled
module (a ``.so`` beside the ``.py``) is then what ``import`` finds first. :func:`install` (called by
``flowviz/__init__``) puts a finder in front that imports the ``.py`` instead when

* ``FLOWVIZ_PURE_PYTHON=1`` (tests compare both on every sample capture: the same bytes out), or
* the source changed since the build (an edit, a checkout): a stale build never runs.

Without a build nothing changes: there is no manifest and every module is Python.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys

#: the hot path of replay and follow, as paths from the repository's top (setup.py compiles these)
MODULES = (
    "flowviz/model.py",
    "flowviz/pcapfile.py",
    "flowviz/pipeline.py",
    "flowviz/decode.py",
    "flowviz/sources/replay.py",
    "flowviz/correlate/__init__.py",
    "flowviz/correlate/identity.py",
    "flowviz/correlate/journeys.py",
    "flowviz/correlate/conns.py",
    "flowviz/correlate/transitions.py",
    "flowviz/render/jsonl.py",
    "flowviz/render/changes.py",
    "flowviz/sources/records.py",
    "flowviz/sources/ringbuf.py",
)

MANIFEST = "_native.json"   #: in the package directory: {module name: sha256 of its source when compiled}
_HERE = os.path.dirname(os.path.abspath(__file__))


def module_name(path: str) -> str:
    """ "flowviz/correlate/__init__.py" → "flowviz.correlate" """
    parts = path[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_hash(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _source_of(name: str) -> str:
    rel = name.split(".")[1:]
    pkg = os.path.join(_HERE, *rel, "__init__.py")
    return pkg if os.path.exists(pkg) else os.path.join(_HERE, *rel) + ".py"


class _PythonSource:
    """A meta path finder: the modules in ``names`` from their .py files."""

    def __init__(self, names: set):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        src = _source_of(name)   # a .py file: spec_from_file_location loads it as source
        pkg = src.endswith("__init__.py")
        return importlib.util.spec_from_file_location(
            name, src, submodule_search_locations=[os.path.dirname(src)] if pkg else None)


def status() -> dict:
    """{module name: "compiled" | "stale" | "python"} for :data:`MODULES` (flowviz doctor says): a
    compiled module beside its source, built from this source; one built from another; none."""
    try:
        with open(os.path.join(_HERE, MANIFEST)) as f:
            built = json.load(f)
    except (OSError, ValueError):
        built = {}
    out = {}
    for path in MODULES:
        name = module_name(path)
        src = _source_of(name)
        base = src[:-3]
        if not any(os.path.exists(base + sfx) for sfx in importlib.machinery.EXTENSION_SUFFIXES):
            out[name] = "python"
        elif built.get(name) != source_hash(src):
            out[name] = "stale"   # edited since, or built by a setup.py that did not compile (no manifest)
        else:
            out[name] = "compiled"
    return out


def install() -> None:
    """Put the finder in front when a module must run from its source (see the module's doc)."""
    pure = os.environ.get("FLOWVIZ_PURE_PYTHON") == "1"
    names = {n for n, s in status().items() if s == "stale" or (pure and s == "compiled")}
    if names:
        sys.meta_path.insert(0, _PythonSource(names))


def in_use() -> dict:
    """{module name: True when the imported module is the compiled one} (imports them)."""
    out = {}
    for path in MODULES:
        name = module_name(path)
        f = getattr(importlib.import_module(name), "__file__", "") or ""
        out[name] = not f.endswith(".py")
    return out
