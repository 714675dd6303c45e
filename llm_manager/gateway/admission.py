"""Admission: everything decided about a call before a model is touched (404/400/401/403/429 come from here).

Which endpoint the path is, whether the body is a JSON object naming a model as a string, whether the caller's key
may use that model, whether the model's interface plugin takes the request, whether a budget allows it; for other
client protocols, whether the model speaks the protocol natively or the call is translated to OpenAI's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..accounting.layer import Accounting
from ..accounting.security import Caller, KeyInfo
from ..config.parse import ModelConfig
from ..errors import BadRequest, ModelNotFound, NotFound, Unavailable
from ..runtime.manager import Manager
from .peers import Forwarded, Peers
from .protocols.base import Adapter, AnswerTranslator
from .validation import EndpointTable, check_fields, json_object, shown


@dataclass
class Call:
    """One request as the core sees it: which endpoint, the body's bytes, who sent it."""

    path: str  # as asked, without leading slash: "v1/chat/completions", "v2/rerank", "v1/messages"
    raw: bytes
    caller: Caller
    started: float = field(default_factory=time.monotonic)
    adapter: Adapter | None = None  # the client protocol when it is not OpenAI's (Pipeline.adapter_for)
    batch_id: str | None = None  # a line of this batch (Batches API): counted as such, served at low priority
    no_cache: bool = False  # the client asked for a fresh answer (Cache-Control: no-cache); it is still stored
    entry_node: str | None = None  # forwarded by this node of the cluster (its secret checked): served here only
    forwarded: Forwarded | None = None  # as received from another node; checked by Pipeline.handle, which then
    # sets ``entry_node``, the proven key and the batch


@dataclass
class Admitted:
    """A call that passed every check and may take a model's capacity."""

    endpoint: str  # upstream path
    body: dict[str, Any]  # as sent upstream (translated, when the call's protocol is translated)
    model: ModelConfig
    key: KeyInfo | None
    stream: bool
    raw: bytes  # the bytes sent upstream
    label: str  # the usage rows' endpoint
    alias: str  # the model name the client used
    translator: AnswerTranslator | None = None  # set when the answer must be translated back
    local: bytes | None = None  # an answer given without the model (count_tokens)
    elsewhere: bool = False  # the model is only on other nodes of the cluster: forwarded (gateway/peers.py)


class Admission:
    """Admits calls for the pipeline (which also admits a call again for each fallback model)."""

    def __init__(self, manager: Manager, accounting: Accounting, adapters: tuple[Adapter, ...] = (),
                 peers: Peers | None = None):
        self.manager = manager
        self.accounting = accounting
        self.peers = peers
        self.endpoints = EndpointTable()
        self.adapters = {path: a for a in adapters for path in a.paths}  # path -> its protocol's adapter

    def adapter_for(self, path: str) -> Adapter | None:
        return self.adapters.get(path)

    def served(self) -> dict[str, str]:
        """Every path the loaded interface plugins serve, mapped to the endpoint it is forwarded as."""
        return self.endpoints.table(self.manager.interfaces)

    def admit(self, call: Call, fallback: str | None = None) -> Admitted:
        """Everything decided before a model is touched: 404/400/401/403/429 come from here. ``fallback``: admit
        the call for that model instead of the one it names (the same checks: key scope, mode, budget)."""
        if call.adapter is not None:
            return self._admit_protocol(call, call.adapter, fallback)
        endpoint = self.served().get(call.path)
        if endpoint is None:  # before the body is looked at: no model makes an unknown path exist
            raise NotFound(f"no endpoint /{call.path}; served: " + ", ".join("/" + e for e in sorted(self.served())))
        body = json_object(call.raw)
        raw = call.raw
        if fallback is not None:
            body = {**body, "model": fallback}
            raw = json.dumps(body).encode()
        name = body.get("model")
        if name is None:
            raise BadRequest("missing required field: model", param="model")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"model must be a non-empty string (a model name or alias), got {shown(name)}",
                             param="model")
        security = self.accounting.security  # read per call: a config reload replaces it
        key = security.authorize(call.caller, name)
        model, elsewhere = self._resolve(call, name)
        if not elsewhere:  # a peer's model: its node checks it against its interface plugin
            self._check_model(body, endpoint, model)
        check_fields(body)
        security.check_budget(key, model.name)
        return Admitted(endpoint, body, model, key, body.get("stream") is True, raw,
                        endpoint.removeprefix("v1/"), name, elsewhere=elsewhere)

    def _resolve(self, call: Call, name: str, spellings: tuple[str, ...] = ()) -> tuple[ModelConfig, bool]:
        """The model ``name`` is, and whether only other nodes have it (found by ``name`` or one of its protocol's
        other ``spellings``); a model only down nodes had is a 503 naming them."""
        try:
            return self.manager.resolve(name), False
        except ModelNotFound:
            if self.peers is None or not self.peers.enabled or call.entry_node is not None:
                raise
            for spelling in (name, *spellings):
                model = self.peers.model(spelling)
                if model is not None:
                    return model, True
            down = [n for spelling in (name, *spellings) for n in self.peers.down_holders(spelling)]
            if not down:
                raise
            now = time.time()
            which = ", ".join(f"{n['name']} (not seen for {now - float(n.get('last_seen') or 0):.0f} s)" for n in down)
            raise Unavailable(f"model {name} is served by node {which}, which is down; no other node has it",
                              headers={"Retry-After": "5"}) from None

    def _check_model(self, body: dict[str, Any], endpoint: str, model: ModelConfig) -> None:
        iface = self.manager.interfaces.get(model.mode)
        if iface is None:
            raise BadRequest(f"model {model.name} has mode {model.mode}, for which no interface plugin is loaded")
        ok, message = iface.validate_request(endpoint, model.name)
        if not ok:
            raise BadRequest(message, param="model")
        problem = iface.validate_body(endpoint, body)
        if problem:
            raise BadRequest(problem, param=problem.split(":")[0])

    def _admit_protocol(self, call: Call, adapter: Adapter, fallback: str | None = None) -> Admitted:
        """A call in another client protocol: relayed as it is to a server that speaks it, else translated."""
        op = adapter.paths[call.path]
        native = json_object(call.raw)
        raw = call.raw
        if fallback is not None:
            native = {**native, "model": fallback}
            raw = json.dumps(native).encode()
        name = fallback or adapter.model_of(op, native)
        if not isinstance(name, str) or not name:
            raise BadRequest(f"model must be a non-empty string (a model name or alias), got {shown(name)}",
                             param="model")
        security = self.accounting.security
        key = security.authorize(call.caller, name)
        model, elsewhere = self._resolve(call, name, adapter.names(name))
        label = adapter.labels.get(op, op)
        if elsewhere:  # relayed as the client sent it: the node that has the model admits and translates it
            security.check_budget(key, model.name)
            return Admitted(call.path, native, model, key, adapter.streams(op, native), raw, label, name,
                            elsewhere=True)
        speaks = adapter.name in model.protocols and op in adapter.native
        local = None if speaks else adapter.local(op, native, model.name)  # the model's own answer first
        if local is not None:
            return Admitted("", native, model, key, False, raw, label, name, local=local)
        if speaks:
            endpoint, body = adapter.native[op], native
            raw, translator = adapter.to_native(op, native, raw, model.name)
        else:
            endpoint, body = adapter.to_openai(op, native, model.name)
            if endpoint not in adapter.auxiliary:
                self._check_model(body, endpoint, model)
            check_fields(body)
            raw, translator = json.dumps(body).encode(), adapter.translator(op, native, model.name)
        security.check_budget(key, model.name)
        return Admitted(endpoint, body, model, key, body.get("stream") is True, raw, label, name, translator)

    def for_peer(self, call: Call, adm: Admitted) -> Admitted:
        """What another node of the cluster is sent: the client's own request (its protocol's path and body, the
        model the one admitted), so the serving node admits, translates, stores and accounts it exactly as one a
        client sent it (one path: Ollama's keep_alive, a native server, stored responses work there as here)."""
        adapter = call.adapter
        if adapter is None or (adm.elsewhere and adm.translator is None):
            return adm
        op = adapter.paths[call.path]
        native, raw = json_object(call.raw), call.raw
        if adapter.model_of(op, native) != adm.alias:  # a fallback (or Ollama's ":latest" dropped)
            native = {**native, "model": adm.alias}
            raw = json.dumps(native).encode()
        return replace(adm, endpoint=call.path, body=native, raw=raw, translator=None,
                       stream=adapter.streams(op, native))
