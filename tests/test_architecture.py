"""The dependency rule of docs/architecture.md, checked: the layer order (import-linter's
contract in pyproject.toml), no import cycles between modules, and a planted upward import fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def run_lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(cwd / "pyproject.toml"), "--no-cache"], cwd=cwd,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def copy_tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    for name in ("pipeline", "flows"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_architecture_layers_contract_is_kept():
    result = run_lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, upward", [
    ("pipeline/io/files.py", "pipeline.modeling.bundle"),       # io -> modeling
    ("pipeline/modeling/features.py", "pipeline.report.html"),  # modeling -> report
    ("pipeline/run/steps.py", "flows.code_corpus"),             # only cli imports flows
    ("pipeline/codebook.py", "pipeline.io.files"),              # kernel -> io
])
def test_architecture_planted_upward_import_breaks_the_contract(tmp_path, module, upward):
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    import {upward}  # noqa\n")
    result = run_lint(tree)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and upward in result.stdout


def test_architecture_no_import_cycles():
    graph = grimp.build_graph("pipeline", "flows", cache_dir=None)
    modules = sorted(graph.modules)
    # strongly connected components (Tarjan), iterative over the module graph
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

    def strongconnect(root):
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1
                    stack.append(child); on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop(); on_stack.discard(member); component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for module in modules:
        if module not in index:
            strongconnect(module)
    assert cycles == [], cycles
