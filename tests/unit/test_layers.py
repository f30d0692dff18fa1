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


# --- which of flowviz's own parts may import which ---------------------------------------------

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

#: each part of flowviz, by layer: a part imports only parts of lower layers (any import, also
#: one inside a function). Lower layers never learn about higher ones: topology reads the lab's
#: state file as data, render writes recordings with pcapfile's comment codec, and so on.
LAYERS = [
    {"errors", "paths", "reference", "sanitize", "model", "lessons", "_untrack", "native"},
    {"gcuntrack"},
    {"annotations", "netns", "decode", "pcapfile", "pcapexpr", "filter"},
    {"correlate", "samples"},
    {"topology", "render", "pipeline"},
    {"sources", "explain", "lesson"},
    {"lab", "tui"},
    {"follow"},
    {"teach"},
    {"cli"},
    {"__main__", "flowviz"},   # the entry points: `python -m flowviz`, the package itself
]


def _imports(root: Path, package: str) -> dict[str, set[str]]:
    """module → the package's modules it imports (absolute dotted names), from the source."""
    out: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        mod = ".".join(rel.parts).removesuffix(".__init__")
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps = out.setdefault(mod, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                    deps.update(f"{target}.{a.name}" if not node.module else target for a in node.names)
                elif node.module and node.module.split(".")[0] == package:
                    deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == package)
    return out


def _part(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_violations(root: Path, package: str, layers=LAYERS) -> list[str]:
    rank = {part: i for i, parts in enumerate(layers) for part in parts}
    out = []
    for mod, deps in sorted(_imports(root, package).items()):
        a = _part(mod)
        if a not in rank:
            out.append(f"{mod}: part {a!r} has no layer in LAYERS")
            continue
        for dep in sorted(deps):
            b = _part(dep)
            if b != a and rank.get(b, len(layers)) >= rank[a]:
                out.append(f"{mod} imports {dep}: {a} may not depend on {b}")
    return out


def import_cycles(root: Path, package: str) -> list[list[str]]:
    """Cycles between modules (an import of a name from a package counts as one of its __init__)."""
    graph = _imports(root, package)
    mods = set(graph)

    def resolve(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rpartition(".")[0]
        return name
    edges = {m: {resolve(d) for d in ds} - {m} for m, ds in graph.items()}
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2
    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    return cycles


FLOWVIZ = Path(__file__).resolve().parents[2] / "flowviz"


def test_dependencies_run_one_way():
    assert layer_violations(FLOWVIZ, "flowviz") == []


def test_no_import_cycles():
    assert import_cycles(FLOWVIZ, "flowviz") == []


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    pkg = tmp_path / "flowviz"
    (pkg / "topology").mkdir(parents=True)
    (pkg / "lab").mkdir()
    for f in ("__init__.py", "topology/__init__.py", "lab/__init__.py", "lab/state.py"):
        (pkg / f).write_text("")
    (pkg / "tui").mkdir()
    (pkg / "tui" / "__init__.py").write_text("")
    (pkg / "model.py").write_text("def f():\n    from .tui import app\n")          # upward, in a function
    (pkg / "topology" / "names.py").write_text("from ..lab.state import LabState\n")  # upward
    (pkg / "lab" / "a.py").write_text("from . import b\n")
    (pkg / "lab" / "b.py").write_text("def g():\n    from .a import x\n")             # a cycle
    found = layer_violations(pkg, "flowviz")
    assert "flowviz.model imports flowviz.tui: model may not depend on tui" in found
    assert "flowviz.topology.names imports flowviz.lab.state: topology may not depend on lab" in found
    assert import_cycles(pkg, "flowviz") == [["flowviz.lab.a", "flowviz.lab.b", "flowviz.lab.a"]]


def test_every_scenario_is_built_targeted_and_offered():
    from flowviz.cli import build_parser
    from flowviz.lab.scenarios import BUILDERS, TARGETS
    from flowviz.reference import SCENARIOS
    assert set(BUILDERS) == set(TARGETS) == set(SCENARIOS)
    lab = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "lab" in a.choices)
    up = next(a for a in lab.choices["lab"]._actions if getattr(a, "choices", None) and "up" in a.choices)
    scenario = next(a for a in up.choices["up"]._actions if a.dest == "scenario")
    assert tuple(scenario.choices) == (*SCENARIOS, "all")
