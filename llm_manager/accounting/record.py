"""The one record the proxy emits per request: the contract between the hot path and accounting."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class UsageRecord:
    """One proxied request, as counted. Times are milliseconds; ``ts`` is the epoch second it finished."""

    model: str
    endpoint: str  # "chat/completions", "completions", "embeddings", "rerank", ...
    status: int
    alias: str = ""
    key_id: str | None = None
    client_ip: str = ""
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # tokens estimated because the upstream reported no usage
    queue_ms: float = 0.0  # waiting for a concurrency slot
    start_ms: float = 0.0  # waiting for a cold model to start
    ttft_ms: float | None = None  # first byte of the answer, from request arrival
    total_ms: float = 0.0
    cost: float = 0.0
    error: str | None = None
    ts: float = field(default_factory=time.time)
    cached: bool = False  # answered from the response cache, not by the model
    batch_id: str | None = None  # a line of this batch (the Batches API), not an interactive request
    instance: str = ""  # the instance ("demo-chat@1") or remote upstream (its host) that served it
    entry_node: str = ""  # the node the client came in at, when another node forwarded the request here
    forwarded_to: str = ""  # this node forwarded it and that node answered (and accounts it): not counted here

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        return d
