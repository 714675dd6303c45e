"""Build the one Tornado application: our API handlers plus the Panel dashboard at /dashboard.

Panel's server (Bokeh's Tornado application underneath) takes our handlers as ``extra_patterns``,
so the proxy, the management API, the WebUI and the dashboard share one port and one IOLoop. The
proxy's POSTs are taken in ahead of the application's routing (``intake.py``).
"""

from __future__ import annotations

import secrets
from typing import Any

from ..service import Service
from .alerts import alerts_routes
from .base import NotFoundHandler
from .batches import batch_routes
from .events import EventSocket
from .guard import RequestGuard, redact_uri
from .intake import install
from .management import (
    ClusterHandler,
    ConfigHandler,
    DeviceHistoryHandler,
    DevicesHandler,
    EventsHandler,
    HealthHandler,
    InfoHandler,
    LogsHandler,
    ModelActionHandler,
    ModelsInfoHandler,
    PlanHandler,
    PluginsHandler,
)
from .ollama import ollama_routes
from .openai import ModelsHandler, V1OtherHandler, route_v1
from .reports import report_routes
from .responses import responses_routes
from .static import WebUIHandler
from .usage import usage_routes

NAME = r"([^/]+)"


def api_patterns(service: Service) -> list[tuple]:
    """Every route of ours, in match order (first match wins)."""
    m = {"service": service}
    routes: list[tuple] = [
        (r"/v1/models/?", ModelsHandler, m),
        (rf"/v1/models/{NAME}", ModelsHandler, m),
        *responses_routes(service),  # GET/DELETE /v1/responses/{id}: ahead of the /v1 catch-all
        *batch_routes(service),  # /v1/files, /v1/batches: likewise
        (r"/(v1/.+)", V1OtherHandler, m),  # POSTs are taken in before routing (intake.py)
        (r"/api/health", HealthHandler, m),
        (r"/api/info", InfoHandler, m),
        (r"/api/models-info", ModelsInfoHandler, m),
        (r"/api/devices", DevicesHandler, m),
        (r"/api/devices/history", DeviceHistoryHandler, m),
        (rf"/api/models/{NAME}/(start|stop)", ModelActionHandler, m),
        (rf"/api/plan/{NAME}", PlanHandler, m),
        (r"/api/cluster", ClusterHandler, m),
        (rf"/api/logs/{NAME}", LogsHandler, m),
        (r"/api/events", EventsHandler, m),
        (r"/api/config", ConfigHandler, m),
        (r"/api/plugins", PluginsHandler, m),
        (r"/api/ws", EventSocket, m),
        *usage_routes(service),
        *ollama_routes(service),
        *alerts_routes(service),
        *report_routes(service),
        (r"/api/.*", NotFoundHandler, m),
        (r"/()", WebUIHandler),
        (r"/(?!api/|v1/|static/|dashboard|panel|autoload|favicon|login|logout)(.*)", WebUIHandler),
    ]
    return routes


def build_server(service: Service, host: str, port: int, dashboard: bool = True) -> Any:
    """A panel.io.server.Server bound to host:port (port 0 picks a free one), not yet started."""
    import panel as pn

    apps: dict[str, Any] = {}
    if dashboard:
        from ..panel_app.dashboard import create_dashboard

        apps["dashboard"] = lambda: create_dashboard(service)
    program = service.manager.config.program
    auth: dict[str, Any] = {}
    if program.admin_key:  # the dashboard can start and stop models: Panel's login page asks for the admin key
        auth = {"basic_auth": program.admin_key, "cookie_secret": secrets.token_hex(32)}
    server = pn.serve(
        apps or {"dashboard": lambda: pn.pane.Markdown("dashboard disabled")},
        port=port, address=host, show=False, start=False, title="llm-manager",
        extra_patterns=api_patterns(service), verbose=False, **auth,
    )
    guard = RequestGuard(program)
    tornado_app = server._tornado  # bokeh.server.tornado.BokehTornado, a tornado.web.Application
    tornado_app.settings["cors_origins"] = program.cors_origins
    tornado_app.settings["log_function"] = log_request
    # Bokeh checks its websocket's Origin itself; the guard has already checked it, by the same rules.
    tornado_app._websocket_origins = guard.websocket_origins(server.port)
    install(server, route_v1(service.pipeline), guard, program.header_timeout)
    return server


def log_request(handler: Any) -> None:
    """Tornado's access line, with secrets in the query string hidden (``?token=...``)."""
    from tornado.log import access_log

    status = handler.get_status()
    level = access_log.info if status < 400 else access_log.warning if status < 500 else access_log.error
    request = handler.request
    level("%d %s %s (%s) %.2fms", status, request.method, redact_uri(request.uri or ""), request.remote_ip,
          1000.0 * request.request_time())
