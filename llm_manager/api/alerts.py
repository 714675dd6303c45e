"""GET /api/alerts: the alert history (newest first), admin scope like the rest of /api."""

from __future__ import annotations

import asyncio

from ..errors import BadRequest
from ..service import Service
from .management import ManagementHandler


class AlertsHandler(ManagementHandler):
    async def get(self) -> None:
        try:
            limit = int(self.get_argument("limit", "100"))
        except ValueError:
            raise BadRequest("limit: expected a whole number", param="limit") from None
        if not 1 <= limit <= 10_000:
            raise BadRequest("limit: expected 1 to 10000", param="limit")
        alerts = self.service.alerts
        rows = [] if alerts is None else await asyncio.get_running_loop().run_in_executor(None, alerts.history, limit)
        self.write_json({"alerts": rows})


def alerts_routes(service: Service) -> list[tuple]:
    return [(r"/api/alerts", AlertsHandler, {"service": service})]
