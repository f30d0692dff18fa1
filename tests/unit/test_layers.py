"""Layering guarded by tests: the core never imports the UI, the UI never imports bcc,
and `--help` / replay do not pay for heavy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = ["flowviz.model", "flowviz.decode", "flowviz.correlate", "flowviz.filter", "flowviz.pcapfile",
        "flowviz.sources", "flowviz.sources.replay", "flowviz.render.jsonl", "flowviz.render.text"]


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.split()}


@pytest.mark.parametrize("module", CORE)
def test_core_never_imports_ui_or_bcc(module):
    mods = loaded_after(f"import {module}")
    assert "textual" not in mods and "bcc" not in mods and "scapy" not in mods


def test_cli_help_is_light():
    mods = loaded_after("from flowviz.cli import build_parser; build_parser()")
    assert not {"textual", "bcc", "scapy", "pyroute2", "docker"} & mods


def test_tui_never_imports_bcc():
    mods = loaded_after("import flowviz.tui, flowviz.tui.app, flowviz.tui.feed")
    assert "bcc" not in mods


def test_explanations_stay_free_of_the_ui():
    assert "textual" not in loaded_after("import flowviz.explain")
