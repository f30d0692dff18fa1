"""Helpers shared by every test kind (import as ``support``; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sample(name: str) -> str:
    """Path of a bundled capture, found through the package like the program does."""
    return str(resources.files("flowviz.pcaps") / name)


def flowviz(*args: str, timeout: float = 120, check: bool = False, input=None) -> subprocess.CompletedProcess:
    """Run the flowviz command line as a user would."""
    r = subprocess.run([sys.executable, "-m", "flowviz", *args], capture_output=True, text=True, timeout=timeout,
                       input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"flowviz {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r
