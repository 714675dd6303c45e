"""Config and plugin changes take effect without a restart.

A new config is validated completely before anything changes (an invalid edit leaves the running
config in place and says why). Then: new models appear, removed ones stop, changed ones restart
once idle; devices and interface plugins are re-read. Plugin files are watched the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ConfigError
from .loading import read_config, read_document
from .plugins import BUILTIN_DIR, PluginFolder
from .router import Router

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0


async def apply_config(manager: Any, new: Config) -> dict[str, list[str]]:
    """Swap in a validated config; returns the names added, removed and changed."""
    old = manager.config
    added = [n for n in new.models if n not in old.models]
    removed = [n for n in old.models if n not in new.models]
    changed = [n for n in new.models if n in old.models and new.models[n] != old.models[n]]
    manager.config = new
    manager.router = Router(new.models)
    for name in removed:
        sup = manager.supervisors.pop(name)
        await sup.stop("removed from the config")
        sup.log.close()
    for sup in manager.supervisors.values():
        sup.take_config(new, new.models[sup.model.name])
    for name in added:
        manager._add_supervisor(new.models[name])
    if new.program != old.program:
        manager.devices.program = new.program
        await asyncio.get_running_loop().run_in_executor(None, manager.devices.load)
        await manager.sample_devices()
    manager._load_interfaces()
    for hook in manager.config_hooks:
        hook(new)
    summary = {"added": added, "removed": removed, "changed": changed}
    manager.bus.publish("event", {"kind": "config", "model": "", "ts": time.time(),
                                  "detail": "config reloaded: " + ", ".join(f"{k} {v}" for k, v in summary.items() if v)
                                  or "config reloaded: no model changes"})
    for name in added:
        if new.models[name].auto_start:
            asyncio.ensure_future(manager._auto_start(name))
    return summary


async def reload_from_document(manager: Any, doc: Any) -> dict[str, list[str]]:
    """PUT /api/config: validate (ConfigError on a bad document), write the file if there is one, apply."""
    base = manager.config.base_dir
    new = await asyncio.get_running_loop().run_in_executor(None, read_document, doc, base, manager.config.source)
    if manager.config.source is not None:
        import json

        path: Path = manager.config.source
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
        manager._config_mtime = path.stat().st_mtime_ns
    return await apply_config(manager, new)


def _plugin_folders(manager: Any) -> PluginFolder:
    p = manager.config.program
    folders = [BUILTIN_DIR / "devices", BUILTIN_DIR / "interfaces"]
    folders += [Path(d) for d in (p.device_plugin_dir, p.interface_plugin_dir) if d]
    return PluginFolder(*folders)


async def watch(manager: Any) -> None:
    """Poll the config file and the plugin folders; reload what changed."""
    source = manager.config.source
    manager._config_mtime = source.stat().st_mtime_ns if source and source.exists() else None
    plugins = _plugin_folders(manager)
    while manager._running:
        await asyncio.sleep(WATCH_INTERVAL)
        try:
            await _check_config(manager)
            if plugins.changed():
                log.info("plugin files changed: reloading plugins")
                await asyncio.get_running_loop().run_in_executor(None, manager.devices.load)
                manager._load_interfaces()
                await manager.sample_devices()
                manager.bus.publish("event", {"kind": "plugins", "model": "", "ts": time.time(),
                                              "detail": f"plugins reloaded; {len(manager.plugin_errors)} errors"})
            plugins.folders = _plugin_folders(manager).folders
        except Exception:  # the watcher must survive anything a user writes
            log.exception("reload failed")


async def _check_config(manager: Any) -> None:
    source = manager.config.source
    if source is None or not source.exists():
        return
    mtime = source.stat().st_mtime_ns
    if mtime == manager._config_mtime:
        return
    manager._config_mtime = mtime
    try:
        new = await asyncio.get_running_loop().run_in_executor(None, read_config, source)
    except ConfigError as exc:
        log.error("config edit rejected, the running config stays: %s", exc.message)
        manager.bus.publish("event", {"kind": "config_error", "model": "", "ts": time.time(), "detail": exc.message})
        return
    summary = await apply_config(manager, new)
    log.info("config reloaded from %s: %s", source, summary)
