"""The public API: ``llm_manager.__all__`` is pinned, every name in it resolves, and ``import llm_manager`` stays light.

Adding or removing a public name is a deliberate change to ``PUBLIC`` below.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import llm_manager

PUBLIC = [
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "Call",
    "Client",
    "ClientError",
    "Config",
    "ConfigError",
    "ControlPanel",
    "DemoHandle",
    "LLMManagerError",
    "Manager",
    "ModelConfig",
    "ModelNotFound",
    "NoCapacity",
    "PermissionDenied",
    "Pipeline",
    "ProgramConfig",
    "QueueFull",
    "RateLimited",
    "Service",
    "StartFailed",
    "Unavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "UsageRecord",
    "__version__",
    "build",
    "control_panel",
    "dashboard",
    "read_config",
    "read_document",
    "start_demo",
]

HEAVY = ("panel", "bokeh", "pandas", "ipywidgets", "sqlalchemy", "sqlmodel")
PACKAGE = Path(llm_manager.__file__).resolve().parent


def test_all_is_pinned():
    assert PUBLIC == sorted(PUBLIC)
    assert llm_manager.__all__ == PUBLIC


def test_every_public_name_resolves():
    for name in llm_manager.__all__:
        assert getattr(llm_manager, name) is not None, name


def test_lazy_names_are_the_objects_their_modules_define():
    for name, module in llm_manager._EXPORTS.items():
        assert getattr(llm_manager, name) is getattr(importlib.import_module(f"llm_manager.{module}"), name), name


def test_errors_are_one_hierarchy():
    for name in llm_manager.__all__:
        value = getattr(llm_manager, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, llm_manager.LLMManagerError), name


def test_version_matches_the_project():
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert f'version = "{llm_manager.__version__}"' in text


def test_no_public_name_shadows_a_submodule():
    """``import llm_manager.X`` sets the package attribute X to the submodule: a public name must not collide."""
    submodules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    assert not set(llm_manager.__all__) & submodules


def test_unknown_name_is_an_attribute_error():
    try:
        llm_manager.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
    assert not hasattr(llm_manager, "no_such_name")


def test_dir_lists_the_lazy_names():
    assert set(llm_manager.__all__) <= set(dir(llm_manager))


def _fresh(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=PACKAGE.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_import_is_light():
    """A fresh interpreter: ``import llm_manager`` loads none of the heavy packages, and dir() still lists the
    lazy names without loading them."""
    out = _fresh(
        "import sys, llm_manager\n"
        "names = dir(llm_manager)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print(sorted(m for m in sys.modules if m.startswith('llm_manager.')))\n"
        "print(all(n in names for n in llm_manager.__all__))\n"
    )
    heavy, ours, listed = out.splitlines()
    assert heavy == "[]", f"import llm_manager loaded {heavy}"
    assert ours == "[]", f"import llm_manager loaded {ours}"
    assert listed == "True"


def test_from_import_works_in_a_fresh_interpreter():
    """``from llm_manager import X`` goes through the lazy path (not a module already loaded by another test)."""
    out = _fresh(
        "import sys\n"
        "from llm_manager import ConfigError, read_config, Client\n"
        "print(ConfigError.__module__, read_config.__module__, Client.__module__)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    modules, heavy = out.splitlines()
    assert modules == "llm_manager.errors llm_manager.config.files llm_manager.client"
    assert heavy == "[]", f"the config loader and Client loaded {heavy}"
