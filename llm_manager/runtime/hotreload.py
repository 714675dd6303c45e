"""Config and plugin files watched, so edits take effect without a restart.

A new config is validated completely before anything changes (an invalid edit leaves the running config in
place and says why); ``Manager.apply_config`` then applies it. Plugin folders are watched the same way and
reloaded through ``Manager.reload_plugins``. This module only watches files and writes the config file; it
needs nothing of the Manager but the small ``Reloadable`` surface.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from ..config.files import read_config, read_document
from ..config.parse import Config
from ..errors import ConfigError
from ..plugin_loader import BUILTIN_DIR, PluginFolder
from .bus import EventBus

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0


class Reloadable(Protocol):
    config: Config
    bus: EventBus

    @property
    def running(self) -> bool: ...

    async def apply_config(self, new: Config) -> dict[str, list[str]]: ...

    async def reload_plugins(self) -> None: ...


class ConfigWatcher:
    """Polls the config file and the plugin folders of one manager; writes the config file for PUT /api/config."""

    def __init__(self, target: Reloadable):
        self.target = target
        self.mtime: int | None = None  # of the config file as last applied (or written by us)

    async def apply_document(self, doc: Any) -> dict[str, list[str]]:
        """PUT /api/config: validate (ConfigError on a bad document), write the file if there is one, apply."""
        config = self.target.config
        new = await asyncio.get_running_loop().run_in_executor(None, read_document, doc, config.base_dir, config.source)
        if config.source is not None:
            path: Path = config.source
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)
            self.mtime = path.stat().st_mtime_ns  # our own write: the watcher must not apply it again
        return await self.target.apply_config(new)

    def _plugin_folders(self) -> PluginFolder:
        p = self.target.config.program
        folders = [BUILTIN_DIR / "devices", BUILTIN_DIR / "interfaces"]
        folders += [Path(d) for d in (p.device_plugin_dir, p.interface_plugin_dir) if d]
        return PluginFolder(*folders)

    async def watch(self) -> None:
        """Poll the config file and the plugin folders; reload what changed (until the manager stops)."""
        source = self.target.config.source
        self.mtime = source.stat().st_mtime_ns if source and source.exists() else None
        plugins = self._plugin_folders()
        while self.target.running:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                await self._check_config()
                if plugins.changed():
                    log.info("plugin files changed: reloading plugins")
                    await self.target.reload_plugins()
                plugins.folders = self._plugin_folders().folders
            except Exception:  # the watcher must survive anything a user writes
                log.exception("reload failed")

    async def _check_config(self) -> None:
        source = self.target.config.source
        if source is None or not source.exists():
            return
        mtime = source.stat().st_mtime_ns
        if mtime == self.mtime:
            return
        self.mtime = mtime
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, read_config, source)
        except ConfigError as exc:
            log.error("config edit rejected, the running config stays: %s", exc.message)
            self.target.bus.publish("event", {"kind": "config_error", "model": "", "ts": time.time(),
                                              "detail": exc.message})
            return
        summary = await self.target.apply_config(new)
        log.info("config reloaded from %s: %s", source, summary)
