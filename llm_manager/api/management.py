"""The management API: health, info, models, devices, start/stop, plan, logs, config, plugins."""

from __future__ import annotations

import asyncio
import time

from .. import __version__
from ..config.redact import redact
from ..errors import LLMManagerError
from .base import BaseHandler, caller_of, log


class ManagementHandler(BaseHandler):
    """Management endpoints require the admin key when one is configured."""

    def prepare(self) -> None:
        if self.request.method != "OPTIONS":
            self.accounting.security.authorize_admin(caller_of(self.request))


class HealthHandler(BaseHandler):
    """GET /api/health, open to monitors: 200 with ``status`` ``ok`` or ``degraded`` (both mean it serves).

    A monitor reads the JSON: ``degraded`` comes with ``reasons`` (usage store failing its flushes, devices
    offline, plugin errors, models in crash back-off). No answer at all means the manager is down."""

    def get(self) -> None:
        self.write_json(self.service.health())


class InfoHandler(ManagementHandler):
    def get(self) -> None:
        m = self.manager
        self.write_json({
            "name": "llm-manager", "version": __version__, "host": m.config.program.host,
            "port": m.listen_port or m.config.program.port, "config_path": str(m.config.source) if m.config.source else None,
            "models": len(m.groups), "devices": len(m.device_readings),
            "auth_required": self.accounting.security.auth_required, "started_at": m.started_at,
            "data_dir": str(m.data_dir), "interfaces": sorted(m.interfaces), "warnings": list(m.config.warnings),
        })


class ModelsInfoHandler(ManagementHandler):
    def get(self) -> None:
        self.write_json({"models": self.manager.models_info()})


class DevicesHandler(ManagementHandler):
    async def get(self) -> None:
        if self.get_argument("fresh", "0") == "1" or not self.manager.device_readings:
            await self.manager.sample_devices()
        self.write_json(self.manager.devices_info())


class DeviceHistoryHandler(ManagementHandler):
    def get(self) -> None:
        seconds = float(self.get_argument("seconds", "600"))
        since = time.time() - seconds
        self.write_json({"samples": [s for s in self.manager.device_history if s["ts"] >= since]})


class ModelActionHandler(ManagementHandler):
    """POST /api/models/{name}/start|stop. start answers 202 at once unless ?wait=1."""

    async def post(self, name: str, action: str) -> None:
        m = self.manager
        model = m.resolve(name)
        if action == "stop":
            self.write_json(await m.stop_model(model.name))
            return
        if self.get_argument("wait", "0") in ("1", "true"):
            self.write_json(await m.start_model(model.name))
            return
        task = asyncio.ensure_future(m.start_model(model.name))
        # Answer once the start is under way (202 "starting"), or with its error if placement refused it.
        deadline = time.monotonic() + 5.0
        while not task.done() and m.model_info(model.name)["state"] in ("stopped", "failed", "stopping"):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        task.add_done_callback(_log_failure)
        self.write_json({"model": model.name, "state": m.model_info(model.name)["state"]}, 202)


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.warning("background start failed: %s", exc.message if isinstance(exc, LLMManagerError) else exc)


class ClusterHandler(ManagementHandler):
    async def get(self) -> None:
        """The managers sharing this one's database: each with its URL, models, devices, last heartbeat, up."""
        cluster = self.service.cluster
        nodes = [] if cluster is None else await asyncio.get_running_loop().run_in_executor(None, cluster.nodes)
        self.write_json({"node": self.manager.config.program.node_name, "nodes": nodes})


class PlanHandler(ManagementHandler):
    async def get(self, name: str) -> None:
        """What a start would do now; ``?more=1``: what one more instance would do (the next one not running)."""
        more = self.get_argument("more", "0").lower() in ("1", "true", "yes")
        self.write_json((await self.manager.plan(name, more=more)).to_dict())


class LogsHandler(ManagementHandler):
    def get(self, name: str) -> None:
        try:
            lines = int(self.get_argument("lines", "200"))
        except ValueError:
            lines = 200
        model = self.manager.resolve(name)
        self.write_json({"model": model.name, "lines": self.manager.logs(model.name, max(0, min(lines, 5000)))})


class EventsHandler(ManagementHandler):
    def get(self) -> None:
        self.write_json({"events": self.manager.events[-200:]})


class ConfigHandler(ManagementHandler):
    def get(self) -> None:
        self.write_json(redact(self.manager.config.raw))

    async def put(self) -> None:
        """Replace the config: validated first (400 naming the JSON path), then applied without a restart."""
        doc = self.json_body()
        summary = await self.manager.reload_config(doc)
        self.write_json({"status": "applied", **summary})


class PluginsHandler(ManagementHandler):
    def get(self) -> None:
        m = self.manager
        self.write_json({
            "interfaces": {name: sorted(p.get_supported_endpoints()) for name, p in m.interfaces.items()},
            "devices": [{"name": r["name"], "plugin": r.get("plugin")} for r in m.device_readings],
            "errors": m.plugin_errors + [e.to_dict() for e in m.devices.errors],
        })
