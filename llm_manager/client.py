"""HTTP client for a running manager, with the Manager's method names (notebooks, standalone Panel, CLI)."""

from __future__ import annotations

import os
from typing import Any

import httpx

from .errors import LLMManagerError


class ClientError(LLMManagerError):
    """An error answer from the manager, carrying its status and message."""


class Client:
    """``Client("http://127.0.0.1:8080").models_info()`` mirrors ``Manager.models_info()``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 330.0):
        self.url = (url or os.environ.get("LLM_MANAGER_URL") or "http://127.0.0.1:8080").rstrip("/")
        key = api_key or os.environ.get("LLM_MANAGER_ADMIN_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # connecting is quick or nothing answers: fail fast there, wait long only for answers (a start may take minutes)
        self.http = httpx.Client(base_url=self.url, headers=headers, trust_env=False,
                                 timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ConnectionError(f"no llm-manager answering at {self.url}: {exc}") from None
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:300]
            err = ClientError(message)
            err.status = r.status_code
            raise err
        return r.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/api/health")

    def models_info(self) -> list[dict[str, Any]]:
        """Every model with its state, profile, pid, port, in-flight and queued requests."""
        return self._call("GET", "/api/models-info")["models"]

    def model_info(self, name: str) -> dict[str, Any]:
        return next(m for m in self.models_info() if name == m["name"] or name in m["aliases"])

    def start_model(self, name: str) -> dict[str, Any]:
        """Start a model and wait until it is ready (placement and eviction as for a request)."""
        return self._call("POST", f"/api/models/{name}/start", params={"wait": "1"})

    def stop_model(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/api/models/{name}/stop")

    def plan(self, name: str, more: bool = False) -> dict[str, Any]:
        """What starting ``name`` would do now, without acting; ``more``: what one more instance would do."""
        return self._call("GET", f"/api/plan/{name}", params={"more": "1"} if more else None)

    def devices_info(self) -> dict[str, Any]:
        return self._call("GET", "/api/devices")

    def logs(self, name: str, lines: int = 200) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/logs/{name}", params={"lines": lines})["lines"]

    def events(self) -> list[dict[str, Any]]:
        """Recent model events (start, ready, stop, evict, crash, budget, config)."""
        return self._call("GET", "/api/events")["events"]

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/api/config")

    # ------------------------------------------------------------------ usage, cost, keys

    def usage_frame(self, days: float = 30, model: str | None = None, key: str | None = None) -> Any:
        """The request log as a pandas DataFrame (same columns as ``Manager.usage_frame``)."""
        import pandas as pd

        params = {"days": days, "limit": 1_000_000, **({"model": model} if model else {}), **({"key": key} if key else {})}
        df = pd.DataFrame(self._call("GET", "/api/usage/requests", params=params)["requests"])
        if not df.empty:
            df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        return df

    def usage_summary(self, days: float = 30) -> dict[str, Any]:
        """Totals, by model, key and day, the month-end forecast and budget status."""
        return self._call("GET", "/api/usage/summary", params={"days": days})

    def recent_usage(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", "/api/usage/recent", params={"limit": limit})["requests"]

    def prices(self) -> dict[str, Any]:
        return self._call("GET", "/api/pricing")

    def set_price(self, model: str, pricing: dict[str, Any] | list[dict[str, Any]] | None) -> dict[str, Any]:
        """Change a model's live price (a pricing block as in config.json, or a list of dated blocks; None: free)."""
        return self._call("PUT", f"/api/pricing/{model}", json={"book": pricing} if isinstance(pricing, list)
                          else pricing or {})

    def cluster(self) -> dict[str, Any]:
        """The managers sharing this one's database: URL, models, devices, last heartbeat, up (``/api/cluster``)."""
        return self._call("GET", "/api/cluster")

    def cluster_nodes(self, up: bool | None = None) -> list[dict[str, Any]]:
        """The nodes of the cluster (``up``: only those up, or only those down), this one marked ``self``."""
        nodes = self.cluster()["nodes"]
        return nodes if up is None else [n for n in nodes if bool(n.get("up")) == up]

    def cluster_models(self) -> dict[str, list[str]]:
        """Every model any up node serves (``/v1/models`` of a node with ``program.cluster_secret``), with the nodes
        that have it: {model: [node, ...]} (a model listed without nodes is this node's, outside a cluster)."""
        data = self._call("GET", "/v1/models")["data"]
        return {m["id"]: list(m.get("nodes", [])) for m in data if "parent" not in m}

    def alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recent alerts, newest first, with their webhook delivery status (``/api/alerts``)."""
        return self._call("GET", "/api/alerts", params={"limit": limit})["alerts"]

    def report(self, from_: str | None = None, to: str | None = None, by: str = "model") -> dict[str, Any]:
        """The usage and cost report as JSON (``/api/report``; dates YYYY-MM-DD, ``by`` like "model,key,day")."""
        params = {k: v for k, v in {"from": from_, "to": to, "by": by, "format": "json"}.items() if v is not None}
        return self._call("GET", "/api/report", params=params)

    def usage_costs(self, days: float | None = 30, since: float | None = None,
                    until: float | None = None) -> dict[str, Any]:
        """Token cost, runtime cost, GPU-seconds and energy per model, key and device (``/api/usage/costs``)."""
        params = {k: v for k, v in {"days": days, "since": since, "until": until}.items() if v is not None}
        return self._call("GET", "/api/usage/costs", params=params)

    def reprice(self, pricing: dict[str, dict[str, Any]], days: float = 30) -> dict[str, Any]:
        """What the last ``days`` would have cost at other prices (nothing is changed)."""
        return self._call("POST", "/api/usage/reprice", json={"pricing": pricing, "days": days})

    def keys(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/keys")["keys"]

    def create_key(self, name: str, models: list[str] | None = None) -> dict[str, Any]:
        """A new API key; its secret is in the answer's ``key`` and is never shown again.

        The first key turns authentication on for /v1; the answer's ``warning`` then says so.
        """
        return self._call("POST", "/api/keys", json={"name": name, "models": models or []})

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/keys/{key_id}")

    def budgets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/budgets")["budgets"]

    # ------------------------------------------------------------------ batches

    def batches(self, limit: int = 100, after: str | None = None) -> list[dict[str, Any]]:
        """Batch objects, newest first (``GET /v1/batches``: this key's own, or all of them for the admin key)."""
        params: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
        return self._call("GET", "/v1/batches", params=params)["data"]

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Cancel a running batch; the answer is the batch object (``cancelling``, then ``cancelled``)."""
        return self._call("POST", f"/v1/batches/{batch_id}/cancel", json={})

    def close(self) -> None:
        self.http.close()
