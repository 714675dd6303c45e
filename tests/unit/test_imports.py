"""Every module imports on its own, and no import circle exists, not even through function-level imports.

A circle that works only because one side imports inside a function breaks the day someone moves that import
(tornado's ``import_test.py`` checks the first half the same way).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "llm_manager"


def module_names() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def imports_of(module: str) -> set[str]:
    """Modules of ours that ``module`` imports anywhere in its text (top level or inside functions)."""
    path = PACKAGE.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    known = set(module_names())
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != module}


def test_every_module_imports_alone():
    """Each module in a fresh child (forked after the third-party packages are loaded, so it is quick)."""
    script = (
        "import importlib, os, sys, traceback\n"
        "import bokeh, numpy, pandas, panel, sqlmodel, tornado.web  # noqa: F401 (loaded once, shared by the forks)\n"
        f"names = {module_names()!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except BaseException:\n"
        "            traceback.print_exc()\n"
        "            os._exit(1)\n"
        "        os._exit(0)\n"
        "    if os.waitpid(pid, 0)[1] != 0:\n"
        "        failed.append(name)\n"
        "print('failed:', failed, 'of', len(names))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "failed: [] of" in r.stdout, r.stdout + r.stderr[-3000:]


def test_no_import_circle():
    graph = {m: imports_of(m) for m in module_names()}
    # a package's __init__ re-exporting its submodules is not a circle of its own
    for name in graph:
        graph[name] = {d for d in graph[name] if not (name.startswith(d + ".") and d in graph)}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        for dep in sorted(graph[node]):
            if dep in on_path:
                circles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                on_path.add(dep)
                visit(dep, [*path, dep], on_path, done)
                on_path.discard(dep)
        done.add(node)

    done: set[str] = set()
    for start in graph:
        if start not in done:
            visit(start, [start], {start}, done)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


# What each layer may not import (ARCHITECTURE.md): the core has no HTTP framework in it, and lower layers
# never reach up.
FORBIDDEN = {
    "llm_manager.config": ("llm_manager.runtime", "llm_manager.gateway", "llm_manager.api", "llm_manager.panel_app"),
    "llm_manager.runtime": ("llm_manager.gateway", "llm_manager.api", "llm_manager.panel_app", "llm_manager.service"),
    "llm_manager.accounting": ("llm_manager.gateway", "llm_manager.api", "llm_manager.panel_app", "llm_manager.service"),
    "llm_manager.gateway": ("llm_manager.api", "llm_manager.panel_app", "llm_manager.service"),
}
NO_WEB_FRAMEWORK = ("tornado", "panel", "bokeh")


def test_layers_import_only_downwards_and_the_core_knows_no_web_framework():
    problems = []
    for module in module_names():
        layer = next((lay for lay in FORBIDDEN if module == lay or module.startswith(lay + ".")), None)
        if layer is None:
            continue
        for dep in imports_of(module):
            if any(dep == f or dep.startswith(f + ".") for f in FORBIDDEN[layer]):
                problems.append(f"{module} imports {dep}")
        path = PACKAGE.parent / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            problems += [f"{module} imports {n}" for n in names if n.split(".")[0] in NO_WEB_FRAMEWORK]
    assert not problems, "\n".join(problems)
