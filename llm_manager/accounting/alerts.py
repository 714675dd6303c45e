"""Alerts: budget thresholds, crash loops, devices going offline (and back), usage-store write failures.

Each is raised once per transition, never per sample: logged as a WARNING (``program.alerts.log``), kept in the
store's ``alert_log`` table and POSTed as JSON to every webhook whose ``kinds`` take it. Raising runs on the IOLoop
and is O(1): the database work goes to one writer thread (in order: the row, then its delivery updates) and each
delivery is its own asyncio task (at most ``MAX_PENDING`` at once), so a slow or dead webhook never slows a request.

Webhook signature (when the webhook has a ``secret``): a receiver recomputes

    X-LLM-Manager-Signature: sha256=<hex HMAC-SHA256(secret, b"<X-LLM-Manager-Timestamp>." + body)>

over the exact body bytes, compares in constant time and refuses a timestamp (Unix seconds) more than a few
minutes old, so a captured delivery cannot be replayed later (:func:`verify_signature` does all three).
``X-LLM-Manager-Alert`` is the alert's id, the same on every retry, for deduplication.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import select, update

from .. import __version__
from ..config.alerts import AlertsSpec, WebhookSpec
from ..config.parse import Config
from ..runtime.manager import Manager
from .schema import AlertLog
from .store import UsageStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LLM-Manager-Signature"
TIMESTAMP_HEADER = "X-LLM-Manager-Timestamp"
ID_HEADER = "X-LLM-Manager-Alert"
KIND_HEADER = "X-LLM-Manager-Alert-Kind"
MAX_PENDING = 256  # deliveries in flight at once; beyond that an alert is kept and logged but not posted
KEEP = 500  # alerts remembered in memory (the whole history is in the store)
CRASH_LOOP = 2  # failures in a row that make a crash loop (the supervisor's back-off starts there)
_BUDGET = re.compile(r"budget (?P<name>'.*'|\".*\") at (?P<percent>\d+) %")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, body: bytes, timestamp: str, signature: str, tolerance: float = 300.0,
                     now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent (no replays)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def shown_url(url: str) -> str:
    """A webhook's URL as history shows it: no user:password, no query string."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class Alert:
    kind: str  # budget | crash | device | store
    subject: str  # the budget, model, device or "usage store"
    message: str
    state: str = "firing"  # "firing", or "resolved" when the condition ended
    details: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: "alert-" + uuid.uuid4().hex[:16])
    delivery: dict[str, str] = field(default_factory=dict)  # webhook (shown_url) -> pending | delivered | failed: ...
    row_id: int | None = None  # alert_log.id once written

    def payload(self) -> dict[str, Any]:
        """The JSON every webhook gets."""
        return {"id": self.id, "source": "llm-manager", "kind": self.kind, "state": self.state,
                "subject": self.subject, "message": self.message, "ts": self.ts,
                "time": datetime.fromtimestamp(self.ts, timezone.utc).isoformat(), "details": self.details}

    def to_dict(self) -> dict[str, Any]:
        return {**self.payload(), "delivery": dict(self.delivery)}


class Alerts:
    """Watches the manager's bus and the store's flushes, raises alerts, logs, keeps and delivers them."""

    def __init__(self, manager: Manager, store: UsageStore | None, spec: AlertsSpec | None = None,
                 backoff: float = 0.5, check_every: float = 1.0):
        self.manager, self.store = manager, store
        self.spec = spec if spec is not None else manager.config.program.alerts
        self.backoff = backoff  # seconds before the first retry; doubled each time, at most 30 s
        self.check_every = check_every  # how often the store's flush state is looked at
        self.recent: deque[Alert] = deque(maxlen=KEEP)
        self._crash_loops: set[str] = set()
        self._online: dict[str, bool] = {}
        self._store_failing = False
        self._deliveries: set[asyncio.Task] = set()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-writer")
        self._http: httpx.AsyncClient | None = None
        self._watch: asyncio.Task | None = None
        self._unsubscribe = [manager.bus.subscribe("event", self._on_event),
                             manager.bus.subscribe("devices", self._on_devices)]
        manager.config_hooks.append(self.apply_config)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start watching the store's flushes (on the running loop)."""
        if self.store is not None and self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._watch_store())

    async def stop(self, grace: float = 2.0) -> None:
        """Stop watching; deliveries get ``grace`` seconds to finish, then are cancelled; pending writes are done."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._watch is not None:
            self._watch.cancel()
        if self._deliveries:
            _, late = await asyncio.wait(set(self._deliveries), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.shutdown)

    def apply_config(self, new: Config) -> None:
        """After a config reload: new webhooks (deliveries under way keep the old ones)."""
        self.spec = new.program.alerts

    # ------------------------------------------------------------ what raises alerts (on the IOLoop)

    def _on_event(self, _topic: str, event: dict[str, Any]) -> None:
        kind, model = event.get("kind"), event.get("model", "")
        if kind == "budget":
            self._budget(event)
        elif kind in ("crash", "fail"):
            sup = self.manager.supervisors.get(model)
            failures = sup.crashes if sup is not None else 0
            if failures >= CRASH_LOOP and model not in self._crash_loops:
                self._crash_loops.add(model)
                last = str(event.get("detail", ""))[:500]
                self.raise_alert("crash", model, f"model {model} is crash-looping: {failures} failures in a row; "
                                                 f"restarts back off ({last})",
                                 details={"model": model, "failures": failures, "last_error": last})
        elif kind == "ready" and model in self._crash_loops:
            self._crash_loops.discard(model)
            self.raise_alert("crash", model, f"model {model} is ready again after its crash loop", "resolved",
                             {"model": model})

    def _budget(self, event: dict[str, Any]) -> None:
        detail = str(event.get("detail", ""))
        m = _BUDGET.search(detail)
        name = m["name"][1:-1] if m else "budget"
        details = {"budget": name, "percent": int(m["percent"]) if m else None, "model": event.get("model")}
        self.raise_alert("budget", name, detail, details=details)

    def _on_devices(self, _topic: str, payload: dict[str, Any]) -> None:
        for d in payload.get("devices", ()):
            name, online = d["name"], bool(d.get("online"))
            before = self._online.get(name, True)
            self._online[name] = online
            if before and not online:
                reason = d.get("offline_reason") or "no reason given"
                self.raise_alert("device", name, f"device {name} went offline: {reason}",
                                 details={"device": name, "reason": reason})
            elif online and not before:
                self.raise_alert("device", name, f"device {name} is back online", "resolved", {"device": name})

    def check_store(self) -> None:
        """One look at the store's flush state: an alert when its writes start failing and when they work again."""
        if self.store is None:
            return
        status = self.store.flush_status()
        if status["failing"] and not self._store_failing:
            self.raise_alert("store", "usage store",
                             f"usage store: writes are failing ({status['last_error']}); {status['pending']} rows "
                             f"wait in memory", details={k: status[k] for k in ("last_error", "pending", "dropped")})
        elif self._store_failing and not status["failing"]:
            self.raise_alert("store", "usage store", "usage store: writes work again", "resolved",
                             {"pending": status["pending"], "dropped": status["dropped"]})
        self._store_failing = bool(status["failing"])

    async def _watch_store(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            try:
                self.check_store()
            except Exception:  # never let the watcher die
                log.exception("checking the usage store for alerts failed")

    # ------------------------------------------------------------ raising, keeping, delivering

    def raise_alert(self, kind: str, subject: str, message: str, state: str = "firing",
                    details: dict[str, Any] | None = None) -> Alert:
        """Log, keep and deliver one alert; returns at once (on the IOLoop)."""
        alert = Alert(kind, subject, message, state, details or {})
        hooks = [h for h in self.spec.webhooks if kind in h.kinds]
        alert.delivery = {shown_url(h.url): "pending" for h in hooks}
        self.recent.append(alert)
        if self.spec.log:
            log.warning("alert %s (%s): %s", kind, state, message)
        self._write(self._insert, alert, dict(alert.delivery))
        body = json.dumps(alert.payload(), separators=(",", ":"), default=str).encode()
        for hook in hooks:
            if len(self._deliveries) >= MAX_PENDING:
                self._delivered(alert, hook, f"failed: not sent, {MAX_PENDING} deliveries already pending")
                continue
            task = asyncio.get_running_loop().create_task(self._deliver(alert, hook, body))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return alert

    async def _deliver(self, alert: Alert, hook: WebhookSpec, body: bytes) -> None:
        """POST ``body``, retried with exponential back-off up to ``hook.retries`` times."""
        if self._http is None:
            self._http = httpx.AsyncClient(headers={"User-Agent": f"llm-manager/{__version__}"})
        attempts = hook.retries + 1
        for attempt in range(1, attempts + 1):
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", ID_HEADER: alert.id, KIND_HEADER: alert.kind,
                       TIMESTAMP_HEADER: stamp}
            if hook.secret:
                headers[SIGNATURE_HEADER] = sign(hook.secret, stamp, body)
            try:
                r = await self._http.post(hook.url, content=body, headers=headers, timeout=hook.timeout)
                problem = None if r.is_success else f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            if problem is None:
                self._delivered(alert, hook, "delivered" if attempt == 1 else f"delivered (attempt {attempt})")
                return
            if attempt < attempts:
                self._delivered(alert, hook, f"pending: attempt {attempt} of {attempts} failed ({problem})")
                await asyncio.sleep(min(30.0, self.backoff * 2 ** (attempt - 1)))
        self._delivered(alert, hook, f"failed: {problem} ({attempts} attempts)")
        log.warning("alert %s could not be delivered to %s: %s after %d attempts", alert.id, shown_url(hook.url),
                    problem, attempts)

    def _delivered(self, alert: Alert, hook: WebhookSpec, status: str) -> None:
        alert.delivery[shown_url(hook.url)] = status
        self._write(self._update, alert, dict(alert.delivery))

    # ------------------------------------------------------------ the alert_log table (writer thread)

    def _write(self, fn: Any, alert: Alert, delivery: dict[str, str]) -> None:
        if self.store is None:
            return
        try:
            self._writer.submit(_logged, fn, alert, delivery)
        except RuntimeError:  # stopped: the alert stays in memory
            pass

    def _insert(self, alert: Alert, delivery: dict[str, str]) -> None:
        t = AlertLog.__table__  # type: ignore[attr-defined]
        row = {"ts": alert.ts, "kind": alert.kind, "subject": alert.subject, "message": alert.message,
               "payload": json.dumps(alert.payload(), default=str), "delivery": json.dumps(delivery)}
        with self.store.engine.begin() as conn:  # type: ignore[union-attr]
            alert.row_id = conn.execute(t.insert().values(**row)).inserted_primary_key[0]

    def _update(self, alert: Alert, delivery: dict[str, str]) -> None:
        if alert.row_id is None:  # its insert failed: nothing to update
            return
        t = AlertLog.__table__  # type: ignore[attr-defined]
        with self.store.engine.begin() as conn:  # type: ignore[union-attr]
            conn.execute(update(t).where(t.c.id == alert.row_id).values(delivery=json.dumps(delivery)))

    # ------------------------------------------------------------ history (blocking: off the IOLoop)

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent alerts, newest first: the store's (they survive restarts) and any not yet written."""
        mine = {a.id: a.to_dict() for a in list(self.recent)}
        rows: list[dict[str, Any]] = []
        if self.store is not None:
            t = AlertLog.__table__  # type: ignore[attr-defined]
            with self.store.engine.connect() as conn:
                found = conn.execute(select(t).order_by(t.c.ts.desc(), t.c.id.desc()).limit(limit)).mappings().all()
            rows = [_from_row(r) for r in found]
        seen = {r["id"] for r in rows}
        rows = [mine.get(r["id"], r) for r in rows] + [a for i, a in mine.items() if i not in seen]
        rows.sort(key=lambda r: r["ts"], reverse=True)
        return rows[:limit]


def _from_row(row: Any) -> dict[str, Any]:
    payload = json.loads(row["payload"] or "{}")
    return {**payload, "kind": row["kind"], "subject": row["subject"], "message": row["message"], "ts": row["ts"],
            "delivery": json.loads(row["delivery"] or "{}")}


def _logged(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # the database may be the very thing failing: the alert stays in memory
        orig = getattr(exc, "orig", None) or exc
        log.warning("alert history not written: %s: %s", type(orig).__name__, str(orig)[:200])
