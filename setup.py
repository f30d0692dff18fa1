"""The optional compiled parts; everything else is in pyproject.toml.

* flowviz/_untrack.c, a C helper (optional=True: without a C compiler or Python's headers the
  install still succeeds and flowviz uses flowviz/gcuntrack.py's pure-Python fallback).
* The hot path (flowviz/native.py's MODULES), compiled by mypyc when mypy is there (pyproject's
  build requirements) and a C compiler too; their manifest, flowviz/_native.json, records each
  module's source hash, so that an edited module runs from its source until the next build.
  Without a compiler they stay Python: the same output, slower.
"""

import json
import os
import shutil
import sys

from setuptools import Extension, setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "flowviz"))
import native  # noqa: E402  (flowviz/native.py alone: the package's __init__ would import too much)


def compiled() -> list:
    manifest = os.path.join("flowviz", native.MANIFEST)
    if os.path.exists(manifest):
        os.remove(manifest)   # until this build succeeds, nothing counts as compiled
    if os.environ.get("FLOWVIZ_PURE_PYTHON") == "1" or shutil.which(os.environ.get("CC", "cc")) is None:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    try:
        exts = mypycify(["--ignore-missing-imports", "--follow-imports=silent",
                         "--disable-error-code=annotation-unchecked", *native.MODULES],
                        opt_level="3", group_name="flowviz._native")
    except SystemExit:   # mypy found a type error (printed above): flowviz stays Python, as without a compiler
        print("setup.py: mypyc refused the modules: the hot path stays Python", file=sys.stderr)
        return []
    with open(manifest, "w") as f:
        json.dump({native.module_name(p): native.source_hash(p) for p in native.MODULES}, f, indent=1)
    return exts


setup(ext_modules=[Extension("flowviz._untrack", ["flowviz/_untrack.c"], optional=True), *compiled()])
