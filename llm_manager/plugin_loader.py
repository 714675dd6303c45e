"""Find, import and validate plugin files from folders, reporting the broken ones instead of failing.

Built-in plugins (the ``plugins`` package beside ``llm_manager``) always load; a configured folder
adds to or overrides them. A file that fails to import, or defines no concrete subclass of the
base class, is reported with its reason and the rest keep working. ``PluginFolder.changed()``
tells the manager when a file was added, edited or removed, so it can reload without a restart.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import plugins as builtin_plugins

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(builtin_plugins.__file__).resolve().parent


@dataclass
class PluginError:
    file: str
    reason: str

    def to_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


@dataclass
class LoadedPlugins:
    classes: list[type] = field(default_factory=list)
    errors: list[PluginError] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # class name -> file


def _is_plugin_class(obj: object, base_name: str, module: ModuleType) -> bool:
    """A concrete class defined in this module whose MRO has a class called ``base_name``.

    Matching by name (not identity) lets a plugin folder ship its own copy of Base_Class.py."""
    return (
        inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and obj.__name__ != base_name
        and any(c.__name__ == base_name for c in obj.__mro__[1:])
        and not inspect.isabstract(obj)
    )


def _import_file(path: Path, package: str) -> ModuleType:
    """Import a plugin file; files of the built-in folder keep their seed-style module names."""
    if path.parent == BUILTIN_DIR / package:
        name = f"plugins.{package}.{path.stem}"
    else:
        name = f"llm_manager_user_plugins.{package}.{path.stem}_{abs(hash(str(path.parent)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def plugin_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.py") if p.stem not in ("Base_Class", "__init__") and not p.stem.startswith("_"))


def load_folder(folder: Path, package: str, base_name: str, result: LoadedPlugins) -> None:
    """Load every plugin class in ``folder`` into ``result``; a later class overrides one with its name."""
    for path in plugin_files(folder):
        try:
            module = _import_file(path, package)
        except BaseException as exc:  # a plugin's import error must not take the manager down
            if isinstance(exc, (KeyboardInterrupt,)):
                raise
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            result.errors.append(PluginError(str(path), f"import failed: {last}"))
            log.warning("plugin %s failed to import: %s", path, last)
            continue
        found = [obj for obj in vars(module).values() if _is_plugin_class(obj, base_name, module)]
        if not found:
            result.errors.append(PluginError(str(path), f"no concrete subclass of {base_name} (missing methods?)"))
            log.warning("plugin %s defines no usable %s", path, base_name)
            continue
        for cls in found:
            result.classes = [c for c in result.classes if c.__name__ != cls.__name__] + [cls]
            result.files[cls.__name__] = str(path)


def load_plugins(package: str, base_name: str, extra_dir: str | None) -> LoadedPlugins:
    """Built-in plugins of ``package`` ("devices" or "interfaces"), then those of ``extra_dir``."""
    result = LoadedPlugins()
    load_folder(BUILTIN_DIR / package, package, base_name, result)
    if extra_dir:
        folder = Path(extra_dir).resolve()
        if folder != (BUILTIN_DIR / package) and folder.is_dir():
            load_folder(folder, package, base_name, result)
        elif not folder.is_dir():
            log.info("plugin folder %s does not exist; using the built-in %s plugins", folder, package)
    return result


class PluginFolder:
    """Remembers the files' modification times to notice edits, additions and removals."""

    def __init__(self, *folders: Path):
        self.folders = [f for f in folders if f is not None]
        self._stamp = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        stamp = {}
        for folder in self.folders:
            for p in plugin_files(folder):
                try:
                    stamp[str(p)] = p.stat().st_mtime_ns
                except OSError:
                    pass
        return stamp

    def changed(self) -> bool:
        now = self._snapshot()
        if now != self._stamp:
            self._stamp = now
            return True
        return False
