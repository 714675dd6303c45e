"""Notebook helpers: a demo manager inside the kernel, an ipywidgets control panel, the Panel dashboard.

One Python surface, two transports. A notebook either hosts the Manager in its own kernel, or drives a running
manager over HTTP with ``Client``; both offer the same method names, so code moves between them unchanged
(only ``await`` differs for the three methods that act on models)::

    method                                              Manager (in the kernel)     Client(url) (over HTTP)
    start_model(name), stop_model(name)                 await (start waits ready)   blocking (start waits ready)
    plan(name)                                          await -> Plan (.to_dict())  blocking -> dict
    models_info(), model_info(name), devices_info(),    plain calls                 plain calls
    logs(name, lines)
    usage_frame(days, model, key), usage_summary(days), plain calls (they may       plain calls
    prices(), set_price(model, block),                  query the usage database)
    reprice(pricing, days), keys(), create_key(name,
    models), revoke_key(id), budgets()

``start_demo()`` serves HTTP on the kernel's own event loop. A blocking HTTP call made from a cell (``Client``,
``openai.OpenAI``) would then wait on the loop it is blocking itself, so in that kernel use
``await asyncio.to_thread(client.models_info)`` or ``demo.async_openai()``. From any other process the blocking
clients work as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w

from .accounting.layer import Accounting
from .client import Client
from .config.files import read_config, read_document
from .config.parse import Config
from .runtime.manager import Manager
from .service import Service, build

DEMO_CONFIG = Path(__file__).resolve().parent / "demo" / "demo.json"
STATE_COLORS = {"ready": "#2e7d32", "starting": "#f9a825", "stopping": "#ef6c00", "failed": "#c62828",
                "stopped": "#607d8b"}

__all__ = ["ControlPanel", "DemoHandle", "DeviceGauge", "control_panel", "dashboard", "demo_document", "start_demo"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_document(path: Path | str = DEMO_CONFIG) -> dict[str, Any]:
    """The bundled demo config with a free port per model, so a demo never collides with a running one."""
    doc = json.loads(Path(path).read_text())
    for name, block in doc.items():
        if name != "program" and isinstance(block, dict) and "port" in block:
            block["port"] = _free_port()
    return doc


@dataclass
class DemoHandle:
    """A composed manager (``service``) and its HTTP server on the kernel's loop; ``await close()`` stops every model.

    ``manager`` drives the models; ``accounting`` answers for usage, cost, keys and budgets."""

    service: Service
    server: Any
    url: str
    data_dir: Path
    owns_data_dir: bool = False
    closed: bool = False

    @property
    def manager(self) -> Manager:
        return self.service.manager

    @property
    def accounting(self) -> Accounting:
        return self.service.accounting

    @property
    def ports(self) -> dict[str, int]:  # the models' ports (free ones, chosen by start_demo)
        return {m.name: m.port for m in self.manager.config.models.values()}

    def client(self) -> Client:
        """An HTTP Client (blocking: in this kernel call it with ``asyncio.to_thread``)."""
        return Client(self.url)

    def openai(self, api_key: str = "none") -> Any:
        """A blocking ``openai.OpenAI`` at url/v1 (in this kernel: call it with ``asyncio.to_thread``)."""
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0,
                             http_client=openai.DefaultHttpxClient(trust_env=False))

    def async_openai(self, api_key: str = "none") -> Any:
        """An ``openai.AsyncOpenAI`` at url/v1: the one to ``await`` from cells of this kernel."""
        import openai

        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0,
                                  http_client=openai.DefaultAsyncHttpxClient(trust_env=False))

    async def close(self) -> None:
        """Stop the HTTP server and every model process; remove the data dir if start_demo made it. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.server.stop()
        await self.service.shutdown()
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"DemoHandle(url={self.url!r}, models={self.ports}, data_dir={str(self.data_dir)!r})"


def _load(config: Config | dict[str, Any] | str | Path | None) -> Config:
    if config is None or isinstance(config, dict):
        return read_document(config or demo_document(), DEMO_CONFIG.parent if config is None else Path.cwd())
    return config if isinstance(config, Config) else read_config(config)


async def start_demo(port: int = 0, data_dir: Path | str | None = None,
                     config: Config | dict[str, Any] | str | Path | None = None) -> DemoHandle:
    """Start a fully wired Manager (usage store, pricing, keys, metrics) and its server on 127.0.0.1:port.

    Without ``data_dir`` the demo gets a fresh directory (under $LLM_MANAGER_DATA_DIR when set, kept; else a temp
    dir removed by ``close()``), so synthetic demo history never lands in a real usage database.
    """
    from .api.app import build_server

    cfg = _load(config)
    parent = os.environ.get("LLM_MANAGER_DATA_DIR") or None
    owns = data_dir is None and parent is None
    if data_dir is None and parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(data_dir or tempfile.mkdtemp(prefix="llm-manager-demo-", dir=parent))
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(dict(cfg.raw), indent=2))  # what this demo runs, ports included
    service = build(cfg, path)
    await service.start()
    try:
        server = build_server(service, "127.0.0.1", port)
        server.start()
    except BaseException:
        await service.shutdown()
        raise
    return DemoHandle(service, server, f"http://127.0.0.1:{server.port}", path, owns)


# ---------------------------------------------------------------- control panel


def _red(text: str) -> str:
    return f'<span style="color:#c62828">{html.escape(text)}</span>'


class DeviceGauge(w.VBox):
    """One device: memory used/total and utilisation as bars, temperature, and which models hold memory on it."""

    def __init__(self, name: str):
        self.memory = w.FloatProgress(min=0, max=1, description="memory")
        self.util = w.FloatProgress(min=0, max=100, description="util %")
        self.memory_label, self.util_label, self.temp, self.holders = w.Label(), w.Label(), w.Label(), w.HTML()
        super().__init__([w.HTML(f"<i>{html.escape(name)}</i>"), w.HBox([self.memory, self.memory_label]),
                          w.HBox([self.util, self.util_label]), w.HBox([self.temp, self.holders])])

    def update(self, d: dict[str, Any]) -> None:
        used, total = float(d.get("used_memory_mb") or 0), float(d.get("total_memory_mb") or 0)
        self.memory.max = max(total, 1.0)
        self.memory.value = min(used, self.memory.max)
        self.memory_label.value = f"{used:,.0f} / {total:,.0f} MB" + ("" if d.get("online", True) else " (offline)")
        util, temp = d.get("usage_percentage"), d.get("temperature_celsius")
        self.util.value = float(util or 0)
        self.util_label.value = "n/a" if util is None else f"{float(util):.0f} %"
        self.temp.value = "temperature n/a" if temp is None else f"temperature {float(temp):.0f} °C"
        held = ", ".join(f"{html.escape(h['model'])} ({h['memory_mb']:,} MB)" for h in d.get("models", []))
        self.holders.value = f" &nbsp;held by: {held}" if held else ""


class ControlPanel(w.VBox):
    """Models with start/stop buttons, device gauges and a log tail, refreshed every ``interval`` s on the loop.

    A Manager is read directly (snapshots in memory); a Client's blocking calls run in a thread so the kernel's
    loop, which may be serving that very Client, never waits on the network.
    """

    def __init__(self, source: Manager | Client, interval: float = 1.0, log_lines: int = 40):
        self.source, self.interval, self.log_lines = source, interval, log_lines
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:  # built outside a loop: the refresh task runs once one runs this loop
            self.loop = asyncio.get_event_loop()
        self.models: list[dict[str, Any]] = []  # the last readings, as models_info() / devices_info() gave them
        self.devices: list[dict[str, Any]] = []
        self.state_labels: dict[str, w.HTML] = {}
        self.buttons: dict[str, tuple[w.Button, w.Button]] = {}
        self.gauges: dict[str, DeviceGauge] = {}
        self.actions: list[asyncio.Future] = []
        self.status = w.HTML()
        self.table = w.GridBox(layout=w.Layout(grid_template_columns="repeat(7, max-content)", grid_gap="2px 14px"))
        self.device_box = w.VBox()
        self.log_model = w.Dropdown(description="Log of", options=[])
        self.log_text = w.Textarea(layout=w.Layout(width="100%", height="220px"), disabled=True)
        self.log_model.observe(lambda _c: self._spawn(self.refresh_logs()), names="value")
        super().__init__([w.HTML("<b>Models</b>"), self.table, w.HTML("<b>Devices</b>"), self.device_box,
                          w.HTML("<b>Logs</b>"), self.log_model, self.log_text, self.status])
        self._task: asyncio.Task | None = self.loop.create_task(self._run()) if interval > 0 else None
        if self.comm is not None:  # the frontend closed the widget: stop refreshing too
            self.comm.on_close(lambda _msg: self.close())

    async def _call(self, name: str, *args: Any) -> Any:
        fn = getattr(self.source, name)
        if not isinstance(self.source, Manager):
            return await asyncio.to_thread(fn, *args)
        out = fn(*args)
        return await out if asyncio.iscoroutine(out) else out

    def _spawn(self, coro: Awaitable[Any]) -> None:
        """Schedule on the panel's loop from any thread (widget callbacks may run off the loop)."""
        def go() -> None:
            self.actions = [a for a in self.actions if not a.done()] + [asyncio.ensure_future(coro)]

        try:
            same = asyncio.get_running_loop() is self.loop
        except RuntimeError:  # no loop in this thread
            same = False
        go() if same else self.loop.call_soon_threadsafe(go)

    async def _act(self, verb: str, model: str) -> None:
        self.status.value = f"{verb} {html.escape(model)} …"
        try:
            await self._call(f"{verb}_model", model)
            self.status.value = f"{verb} {html.escape(model)}: done"
        except Exception as exc:  # shown, not raised: a failed start must not kill the panel
            self.status.value = _red(f"{verb} {model} failed: {exc}")
        await self.refresh()

    def start(self, model: str) -> None:
        self._spawn(self._act("start", model))

    def stop(self, model: str) -> None:
        self._spawn(self._act("stop", model))

    async def refresh(self) -> None:
        """Read models, devices and the selected log once and update the widgets."""
        self.models = await self._call("models_info")
        self.devices = (await self._call("devices_info"))["devices"]
        self._render_models()
        self._render_devices()
        await self.refresh_logs()

    async def refresh_logs(self) -> None:
        name = self.log_model.value
        if name:
            lines = await self._call("logs", name, self.log_lines)
            self.log_text.value = "\n".join(f"[{x['stream']}] {x['line']}" for x in lines)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the manager went away: say so and keep trying
                self.status.value = _red(f"refresh failed: {exc}")
            await asyncio.sleep(self.interval)

    def _render_models(self) -> None:
        names = [m["name"] for m in self.models]
        if list(self.state_labels) != names:  # build the grid once per set of models
            head = [w.HTML(f"<b>{h}</b>") for h in ("model", "mode", "state", "profile", "port", "", "")]
            cells: list[w.Widget] = head
            self.state_labels, self.buttons = {}, {}
            for m in self.models:
                start = w.Button(description="start", button_style="success", layout=w.Layout(width="70px"))
                stop = w.Button(description="stop", button_style="warning", layout=w.Layout(width="70px"))
                start.on_click(lambda _b, n=m["name"]: self.start(n))
                stop.on_click(lambda _b, n=m["name"]: self.stop(n))
                self.state_labels[m["name"]] = w.HTML()
                self.buttons[m["name"]] = (start, stop)
                cells += [w.HTML(html.escape(m["name"])), w.HTML(html.escape(str(m["mode"]))),
                          self.state_labels[m["name"]], w.HTML(), w.HTML(str(m["port"])), start, stop]
            self.table.children = cells
            self.log_model.options = names
        for i, m in enumerate(self.models):
            color = STATE_COLORS.get(m["state"], "#455a64")
            self.state_labels[m["name"]].value = f'<span style="color:{color};font-weight:600">● {m["state"]}</span>'
            self.table.children[7 * (i + 1) + 3].value = html.escape(m.get("profile") or "")
            start, stop = self.buttons[m["name"]]
            start.disabled = m["state"] in ("ready", "starting")
            stop.disabled = m["state"] in ("stopped", "stopping")

    def _render_devices(self) -> None:
        if list(self.gauges) != [d["name"] for d in self.devices]:
            self.gauges = {d["name"]: DeviceGauge(d["name"]) for d in self.devices}
            self.device_box.children = list(self.gauges.values())
        for d in self.devices:
            self.gauges[d["name"]].update(d)

    def states(self) -> dict[str, str]:
        """Each model's state as plain text, as last read (the state labels hold styled HTML for the widget)."""
        return {m["name"]: m["state"] for m in self.models}

    async def wait_for(self, model: str, state: str, timeout: float = 60.0) -> None:
        """Refresh until ``model`` shows ``state`` (used by notebooks and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            await self.refresh()
            if any(m["name"] == model and m["state"] == state for m in self.models):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{model} did not reach {state} in {timeout:g} s")
            await asyncio.sleep(0.2)

    def close(self) -> None:
        """Stop the refresh task, then close this panel's widgets (a started model keeps running)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        stack: list[w.Widget] = list(self.children)
        while stack:
            child = stack.pop()
            stack += list(getattr(child, "children", ()))
            child.close()
        super().close()


def control_panel(source: Manager | Client, interval: float = 1.0, log_lines: int = 40) -> ControlPanel:
    """The live control panel for a Manager in this kernel or a Client of a running manager (call in a loop)."""
    return ControlPanel(source, interval, log_lines)


def dashboard(manager: Any) -> Any:
    """The Panel dashboard's views inside Jupyter (a Service, a Manager, a Client or a dashboard source), filled once."""
    import panel as pn

    pn.extension("tabulator")
    try:
        from .panel_app.dashboard import create_dashboard
    except Exception as exc:  # the dashboard is optional here; say why instead of failing the cell
        return pn.pane.Markdown(f"**The Panel dashboard could not be loaded:** `{type(exc).__name__}: {exc}`")
    view = create_dashboard(manager)
    refresh = getattr(getattr(view, "dashboard", None), "refresh_all", None)
    with contextlib.suppress(RuntimeError):  # no running loop: the views stay empty until refreshed
        if refresh is not None:
            asyncio.get_running_loop().create_task(refresh())
    return view
