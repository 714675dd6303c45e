"""The other nodes of a cluster as routing targets: one endpoint for the fleet.

Managers sharing one database see each other's heartbeats (``accounting.cluster``). With ``program.cluster_secret``
set, a request for a model this node does not have, or cannot place now, is forwarded to a node that has it (ready
first, else one that can start it), as to a remote upstream (``runtime.remote.Remote``: passive cool-down). The
forwarded request carries the cluster secret, the entry node's name and the key id the entry node proved; the serving
node checks the secret (constant time), never the client's key again, and accounts the request once, naming the
entry node. A forwarded request is served where it lands: never forwarded again.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..accounting.cluster import DOWN_AFTER, HEARTBEAT
from ..config.parse import ModelConfig, ProgramConfig
from ..config.serving import UpstreamSpec
from ..runtime.remote import Remote

log = logging.getLogger(__name__)

SECRET_HEADER = "X-LLM-Manager-Cluster-Secret"  # the cluster secret (never logged)
ENTRY_HEADER = "X-LLM-Manager-Entry-Node"  # the node the client came in at
KEY_HEADER = "X-LLM-Manager-Key-Id"  # the key id the entry node proved ("" on an open cluster)
BATCH_HEADER = "X-LLM-Manager-Batch-Id"  # a batch line's batch: served at low priority, accounted to the batch
NODE_HEADER = "X-LLM-Manager-Node"  # on answers: the node that served
READY_FIRST = {"ready": 0, "starting": 1, "sleeping": 2}  # a peer's model state -> preference (lower first)


class Forwarded(NamedTuple):
    """What a request another node forwarded carries, as received: nothing of it is believed before
    ``Pipeline.handle`` checked the secret."""

    secret: str
    entry: str  # the node the client came in at
    key_id: str  # the key the entry node proved ("": none)
    batch_id: str = ""  # a batch line's batch ("": an interactive request)

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Forwarded | None:
        """From a request's headers; None: a client's own request (no cluster secret presented)."""
        secret = headers.get(SECRET_HEADER)
        if secret is None:
            return None
        return cls(secret, headers.get(ENTRY_HEADER, ""), headers.get(KEY_HEADER, ""), headers.get(BATCH_HEADER, ""))


class Peers:
    """This node's view of the others (from the registry's heartbeats) and their models as targets."""

    def __init__(self, program: ProgramConfig):
        self.node = program.node_name
        self.secret = program.cluster_secret
        self.nodes: list[dict[str, Any]] = []  # the registry's last read, this node included
        self._remotes: dict[tuple[str, str, str], Remote] = {}  # (node, url, model) -> its target, health kept

    @property
    def enabled(self) -> bool:
        """Forwarding needs the secret: without it a node serves only its own models."""
        return bool(self.secret)

    def take_config(self, program: ProgramConfig) -> None:
        self.node, self.secret = program.node_name, program.cluster_secret

    def update(self, nodes: list[dict[str, Any]]) -> None:
        """The registry's latest read (after each heartbeat; on the event loop)."""
        self.nodes = nodes

    def verify(self, presented: str) -> bool:
        """Whether a forwarded request's secret is this cluster's (constant time)."""
        return bool(self.secret) and secrets.compare_digest(presented.encode(), (self.secret or "").encode())

    @staticmethod
    def _up(node: dict[str, Any], now: float) -> bool:
        return now - float(node.get("last_seen") or 0) < DOWN_AFTER * HEARTBEAT

    def others(self, up: bool | None = True) -> list[dict[str, Any]]:
        """The other nodes (``up``: only those seen within three heartbeats; False: only the down ones)."""
        now = time.time()
        return [n for n in self.nodes if n.get("name") != self.node and n.get("url")
                and (up is None or self._up(n, now) == up)]

    @staticmethod
    def _has(node: dict[str, Any], name: str) -> dict[str, Any] | None:
        folded = name.casefold()
        for m in node.get("models", []):
            if folded in {n.casefold() for n in (m["name"], *m.get("aliases", []))}:
                return m
        return None

    def holders(self, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(node, its model entry) of every up node with ``name``: ready first, then the least busy."""
        found = [(n, m) for n in self.others() if (m := self._has(n, name)) is not None]
        return sorted(found, key=lambda nm: (READY_FIRST.get(nm[1].get("state", ""), 3),
                                             nm[1].get("in_flight", 0) + nm[1].get("queued", 0)))

    def down_holders(self, name: str) -> list[dict[str, Any]]:
        """The down nodes that had ``name`` when last seen."""
        return [n for n in self.others(up=False) if self._has(n, name) is not None]

    def model(self, name: str) -> ModelConfig | None:
        """A model only peers serve, as this node routes it (no local process); None when no up node has it."""
        if not self.enabled:
            return None
        found = self.holders(name)
        if not found:
            return None
        entry = found[0][1]
        return ModelConfig(name=entry["name"], mode=entry.get("mode") or "Chat", port=None, profiles=(),
                           aliases=tuple(entry.get("aliases", ())))

    def targets(self, name: str, avoid: set[str]) -> list[tuple[str, Remote]]:
        """(node name, target) for each up node with ``name`` that is not cooling down after a failure, less those
        in ``avoid``: ready ones first."""
        out = []
        for node, entry in self.holders(name):
            url = str(node["url"]).rstrip("/")
            key = (node["name"], url, entry["name"])
            remote = self._remotes.get(key)
            if remote is None:
                remote = self._remotes[key] = Remote(UpstreamSpec(url=url + "/v1"), entry["name"], self._changed)
            if remote.id in avoid or remote.cooling_s() > 0:
                continue
            out.append((node["name"], remote))
        return out

    def headers(self, key_id: str | None, batch_id: str | None = None) -> dict[str, str]:
        """What a forwarded request carries besides its body (never the client's own key)."""
        out = {SECRET_HEADER: self.secret or "", ENTRY_HEADER: self.node, KEY_HEADER: key_id or ""}
        if batch_id:
            out[BATCH_HEADER] = batch_id
        return out

    def _changed(self, remote: Remote, kind: str, detail: str) -> None:
        log.warning("peer %s: %s", remote.id, detail)

    def models(self) -> list[dict[str, Any]]:
        """Every model the up peers serve, once each, with the nodes that have it (for /v1/models)."""
        out: dict[str, dict[str, Any]] = {}
        for node in self.others():
            for m in node.get("models", []):
                entry = out.setdefault(m["name"], {"name": m["name"], "mode": m.get("mode"), "state": m.get("state"),
                                                   "aliases": list(m.get("aliases", [])), "nodes": []})
                entry["nodes"].append(node["name"])
                if READY_FIRST.get(m.get("state", ""), 3) < READY_FIRST.get(entry["state"] or "", 3):
                    entry["state"] = m.get("state")
        return list(out.values())
