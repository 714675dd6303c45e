"""Ollama's read-only endpoints (/api/tags, /api/ps, /api/version, /api/show): the manager's models in Ollama's shapes.

Ollama clients (Open WebUI's Ollama connection, the ``ollama`` library) list and inspect models here before they
chat through the adapter's /api/chat. The same API keys as /v1 apply; errors are Ollama's ``{"error": "..."}``.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from typing import Any

import tornado.web

from .. import __version__
from ..config.parse import ModelConfig
from ..errors import BadRequest, LLMManagerError
from ..gateway.protocols.ollama import tagged, untagged
from ..service import Service
from .base import BaseHandler, caller_of

CAPABILITIES = {"v1/chat/completions": ["completion", "tools"], "v1/completions": ["completion"],
                "v1/embeddings": ["embedding"]}
FOREVER = "2318-01-01T00:00:00Z"  # what Ollama shows as a kept-forever model's expiry


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class OllamaHandler(BaseHandler):
    """Ollama's error shape, and the models a caller's key may see."""

    def send_llm_error(self, exc: LLMManagerError) -> None:
        if self._finished:
            return
        self.clear()
        self.set_default_headers()
        for k, v in exc.headers.items():
            self.set_header(k, v)
        self.write_json({"error": exc.message}, exc.status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LLMManagerError):
            self.send_llm_error(exc)
            return
        reason = self._reason if status_code < 500 else "internal error; see the server log"
        self.write_json({"error": f"{self.request.method} {self.request.path}: {reason}"}, status_code)

    def visible(self, cluster: bool = False) -> list[ModelConfig]:
        """The configured models, those a key scoped to some models may use only; ``cluster``: then those only
        other nodes of the cluster have (forwarded there; described as far as their heartbeats tell)."""
        key = self.accounting.security.authorize(caller_of(self.request), None)
        scoped = getattr(key, "models", None)
        allowed = None
        if scoped:
            allowed = set()
            for name in scoped:
                try:
                    allowed.add(self.manager.resolve(name).name)
                except LLMManagerError:
                    allowed.add(name)  # perhaps another node's
        here = [m for m in self.manager.config.models.values() if allowed is None or m.name in allowed]
        peers = self.service.pipeline.peers
        if cluster and peers.enabled:
            names = {m.name for m in here}
            for entry in peers.models():
                model = peers.model(entry["name"]) if entry["name"] not in names else None
                if model is not None and (allowed is None or model.name in allowed):
                    here.append(model)
        return here

    def describe(self, model: ModelConfig) -> dict[str, Any]:
        """Ollama's common model fields: name (tagged), size (the memory of its first profile), a digest of its
        config, details."""
        profile = model.profiles[0] if model.profiles else None
        size = sum(profile.memory_mb.values()) * 2**20 if profile else 0
        digest = hashlib.sha256(json.dumps(repr(model)).encode()).hexdigest()
        details = {"parent_model": "", "format": "gguf", "family": model.mode.lower(), "families": [model.mode.lower()],
                   "parameter_size": "", "quantization_level": ""}
        return {"name": tagged(model.name), "model": tagged(model.name), "modified_at": iso(self.manager.started_at),
                "size": size, "digest": digest, "details": details}

    def capabilities(self, model: ModelConfig) -> list[str]:
        iface = self.manager.interfaces.get(model.mode)
        endpoints = iface.get_supported_endpoints() if iface is not None else set()
        out = sorted({c for e in endpoints for c in CAPABILITIES.get(e, [])})
        if "completion" in out and any("mmproj" in " ".join(p.command or ()) for p in model.profiles):
            out.append("vision")
        return out


class TagsHandler(OllamaHandler):
    """GET /api/tags: every model the caller may use (in a cluster, the other nodes' too)."""

    def get(self) -> None:
        self.write_json({"models": [self.describe(m) for m in self.visible(cluster=True)]})


class PsHandler(OllamaHandler):
    """GET /api/ps: the loaded (ready) models, with when they will be stopped for idling."""

    def get(self) -> None:
        out = []
        for model in self.visible():
            info = self.manager.model_info(model.name)
            if info["state"] != "ready":
                continue
            limit = self.manager.idle_limit(model.name)
            last = info.get("last_used") or time.time()
            row = self.describe(model)
            profile = next((p for p in model.profiles if p.name == info.get("profile")), None)
            row["size"] = row["size_vram"] = sum(profile.memory_mb.values()) * 2**20 if profile else 0
            row["expires_at"] = FOREVER if limit is None else iso(last + limit)
            out.append(row)
        self.write_json({"models": out})


class VersionHandler(OllamaHandler):
    """GET /api/version: the manager's version (clients only check that an Ollama API answers)."""

    def get(self) -> None:
        self.accounting.security.authorize(caller_of(self.request), None)
        self.write_json({"version": __version__})


class ShowHandler(OllamaHandler):
    """POST /api/show: one model's details and capabilities (completion, tools, embedding, vision)."""

    def post(self) -> None:
        body = self.json_body()
        name = body.get("model", body.get("name"))
        if not isinstance(name, str) or not name:
            raise BadRequest("model: expected a model name", param="model")
        name = untagged(name, self.manager.resolve)
        self.accounting.security.authorize(caller_of(self.request), name)
        model = self.manager.resolve(name)
        row = self.describe(model)
        self.write_json({  # no launch command: it may hold paths or an upstream key
            "modelfile": f"# served by llm-manager ({model.mode} model)\nFROM {model.name}\n", "parameters": "",
            "template": "", "details": row["details"], "modified_at": row["modified_at"],
            "model_info": {"general.architecture": model.mode.lower(), "llm_manager.mode": model.mode,
                           "llm_manager.aliases": list(model.aliases)},
            "capabilities": self.capabilities(model),
        })


class InferenceOtherHandler(OllamaHandler):
    """/api/chat, /api/generate, /api/embed(dings) other than POST (the intake takes POSTs to the adapter): CORS
    preflights, 405 for the rest."""

    def prepare(self) -> None:
        if self.request.method != "OPTIONS":
            raise tornado.web.HTTPError(405)


def ollama_routes(service: Service) -> list[tuple]:
    m = {"service": service}
    return [(r"/api/tags", TagsHandler, m), (r"/api/ps", PsHandler, m), (r"/api/version", VersionHandler, m),
            (r"/api/show", ShowHandler, m), (r"/api/(?:chat|generate|embed|embeddings)", InferenceOtherHandler, m)]
