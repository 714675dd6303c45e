"""Compose one manager process: the runtime, its accounting and the request pipeline, built once.

``build`` is the one place that wires them; ``llm-manager serve``, ``notebook.start_demo`` and the tests use it,
then hand the ``Service`` to ``api.app.build_server`` to put it on a port.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .accounting.alerts import Alerts
from .accounting.batch_store import BatchStore
from .accounting.cluster import NodeRegistry, heartbeat
from .accounting.layer import Accounting
from .accounting.store import UsageStore
from .config.parse import Config
from .gateway.batch import BatchRunner
from .gateway.pipeline import Pipeline
from .gateway.protocols.registry import default_adapters
from .runtime.manager import Manager


@dataclass
class Service:
    """Everything one manager process runs."""

    manager: Manager
    accounting: Accounting
    pipeline: Pipeline
    batches: BatchRunner | None = None  # the Batches API (None: built without it)
    alerts: Alerts | None = None  # program.alerts: budget, crash-loop, device and store alerts (None: none raised)
    cluster: NodeRegistry | None = None  # the node registry on the usage database (None: no store)
    _key_sync: asyncio.Future | None = field(default=None, repr=False)
    _heartbeat: asyncio.Future | None = field(default=None, repr=False)
    _budget_sync: asyncio.Future | None = field(default=None, repr=False)

    async def start(self) -> None:
        await self.manager.start()
        self._key_sync = asyncio.ensure_future(self.accounting.sync_keys())
        if self.accounting.ledger is not None:
            self._budget_sync = asyncio.ensure_future(self.accounting.ledger.run())
        if self.cluster is not None:
            self._heartbeat = asyncio.ensure_future(heartbeat(self.cluster, self.manager, self.pipeline.peers.update))
        self.alerts.start() if self.alerts else None
        await self.batches.start() if self.batches else None  # resume what a previous run left unfinished

    async def shutdown(self) -> None:
        for task in (self._key_sync, self._heartbeat, self._budget_sync):
            if task is not None:
                task.cancel()
        await self.batches.stop() if self.batches else None  # before the models go: lines in flight rerun later
        await self.alerts.stop() if self.alerts else None  # before the store closes: its last rows are written
        await self.manager.shutdown()
        if self.accounting.ledger is not None:  # the spend of the last requests, into the cluster's rows
            await self.accounting.ledger.fresh()
        await self.pipeline.close()

    def health(self) -> dict[str, Any]:
        return self.accounting.health(self.manager.health())


def build(config: Config, data_dir: Path | str | None = None, with_store: bool = True) -> Service:
    """A manager with its usage store (unless ``with_store`` is false), pricing, keys, budgets, metrics and alerts."""
    manager = Manager(config, data_dir)
    program = config.program
    store = UsageStore(program.database_url, manager.data_dir, program.flush_interval,
                       node=program.node_name) if with_store else None
    accounting = Accounting(manager, store)
    pipeline = Pipeline(manager, accounting, default_adapters(store, program.responses_retention_days, manager))
    batch_store = BatchStore(store.engine, manager.data_dir / "files") if store is not None else None
    cluster = NodeRegistry(store.engine, program.node_name) if store is not None else None
    return Service(manager, accounting, pipeline, BatchRunner(pipeline, batch_store), Alerts(manager, store), cluster)
