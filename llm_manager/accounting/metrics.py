"""Prometheus metrics: counters and histograms fed per request, gauges read from the Manager at scrape time.

Names follow Prometheus conventions (``promtool check metrics`` is clean): base units in the name (bytes,
seconds), ``_total`` on counters.

Each Manager has its own registry, so several managers in one process (tests, notebooks) never clash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .record import UsageRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)  # seconds: a process to a 70B load
MIB = 1024 * 1024  # readings are in MB as the config writes them (MiB); Prometheus wants base units: bytes
STATES = ("stopped", "starting", "ready", "stopping", "failed", "sleeping")


class ManagerCollector:
    """Model state, in-flight and queue depth, and device memory, read when Prometheus scrapes."""

    def __init__(self, manager: Any):
        self.manager = manager

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily("llm_model_state", "1 for the model's current state", labels=["model", "state"])
        in_flight = GaugeMetricFamily("llm_model_in_flight", "requests being served", labels=["model"])
        queued = GaugeMetricFamily("llm_model_queue_depth", "requests waiting for a slot", labels=["model"])
        for info in self.manager.models_info():
            for s in STATES:
                state.add_metric([info["name"], s], 1.0 if info["state"] == s else 0.0)
            in_flight.add_metric([info["name"]], info["in_flight"])
            queued.add_metric([info["name"]], info["queued"])
        yield from (state, in_flight, queued)
        yield from self._targets()
        used = GaugeMetricFamily("llm_device_memory_used_bytes", "device memory in use", labels=["device"])
        total = GaugeMetricFamily("llm_device_memory_total_bytes", "device memory", labels=["device"])
        online = GaugeMetricFamily("llm_device_online", "1 when the device is online", labels=["device"])
        for d in self.manager.device_readings:
            used.add_metric([d["name"]], float(d.get("used_memory_mb") or 0) * MIB)
            total.add_metric([d["name"]], float(d.get("total_memory_mb") or 0) * MIB)
            online.add_metric([d["name"]], 1.0 if d.get("online") else 0.0)
        yield from (used, total, online)

    def _targets(self) -> Iterator[GaugeMetricFamily]:
        """Each instance's state and load, each remote upstream's health and cool-down."""
        labels = ["model", "instance"]
        ready = GaugeMetricFamily("llm_instance_ready", "1 when the instance is ready", labels=labels)
        busy = GaugeMetricFamily("llm_instance_in_flight", "requests the instance serves now", labels=labels)
        healthy = GaugeMetricFamily("llm_upstream_healthy", "1 when the remote upstream takes requests",
                                    labels=["model", "upstream"])
        cooling = GaugeMetricFamily("llm_upstream_cooldown_seconds", "seconds before the upstream is checked again",
                                    labels=["model", "upstream"])
        up_busy = GaugeMetricFamily("llm_upstream_in_flight", "requests the upstream serves now",
                                    labels=["model", "upstream"])
        for group in self.manager.groups.values():
            for sup in group.instances:
                ready.add_metric([group.model.name, sup.id], 1.0 if sup.state.value == "ready" else 0.0)
                busy.add_metric([group.model.name, sup.id], sup.in_flight)
            for remote in group.remotes:
                healthy.add_metric([group.model.name, remote.id], 1.0 if remote.usable else 0.0)
                cooling.add_metric([group.model.name, remote.id], remote.cooling_s())
                up_busy.add_metric([group.model.name, remote.id], remote.in_flight)
        yield from (f for f in (ready, busy, healthy, cooling, up_busy) if f.samples)  # no empty families


class Metrics:
    def __init__(self, manager: Any):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llm_requests", "proxied requests", ["model", "endpoint", "status"], registry=r)
        self.served = Counter("llm_instance_requests", "requests answered, by the instance or upstream that served "
                              "them", ["model", "instance"], registry=r)
        self.tokens = Counter("llm_tokens", "tokens counted", ["model", "kind"], registry=r)
        self.cost = Counter("llm_cost", "money spent, in the model's pricing currency", ["model"], registry=r)
        self.latency = Histogram("llm_request_duration_seconds", "request time, arrival to last byte", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("llm_time_to_first_token_seconds", "arrival to first byte of the answer", ["model"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.cache_hits = Counter("llm_cache_hits", "requests answered by the response cache", ["model"], registry=r)
        self.cache_misses = Counter("llm_cache_misses", "cacheable requests the response cache could not answer",
                                    ["model"], registry=r)
        self.cache_saved = Counter("llm_cache_tokens_saved", "tokens of the answers the response cache gave",
                                   ["model"], registry=r)
        self.cold_start = Histogram("llm_cold_start_phase_seconds", "a model start, phase by phase: spawn, port "
                                    "(open), healthy, first_byte (of the request that waited)", ["model", "phase"],
                                    buckets=START_BUCKETS, registry=r)
        self.registry.register(ManagerCollector(manager))
        manager.bus.subscribe("event", self._start_phases)
        self._cache_series(manager.config)
        manager.config_hooks.append(self._cache_series)

        self._per_model: dict[str, tuple[Any, ...]] = {}  # labelled children, looked up once per model
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._served: dict[tuple[str, str], Any] = {}

    def _start_phases(self, _topic: str, event: dict[str, Any]) -> None:
        """A start's phases, from its ``ready`` event (spawn, port, healthy) and ``cold-start`` (first byte)."""
        phases = event.get("phases") or {}
        for phase in ("spawn", "port", "healthy") if event.get("kind") == "ready" else ("first_byte",):
            if phase in phases:
                self.cold_start.labels(event["model"], phase).observe(phases[phase])

    def observe(self, rec: UsageRecord) -> None:
        """Count one finished request (on the hot path: the labelled series are cached)."""
        model = self._per_model.get(rec.model)
        if model is None:
            model = self._per_model[rec.model] = (
                self.tokens.labels(rec.model, "prompt"), self.tokens.labels(rec.model, "completion"),
                self.cost.labels(rec.model), self.latency.labels(rec.model), self.ttft.labels(rec.model))
        prompt, completion, cost, latency, ttft = model
        key = (rec.model, rec.endpoint, rec.status)
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = self.requests.labels(rec.model, rec.endpoint, str(rec.status))
        requests.inc()
        if rec.instance:
            served = self._served.get((rec.model, rec.instance))
            if served is None:
                served = self._served[(rec.model, rec.instance)] = self.served.labels(rec.model, rec.instance)
            served.inc()
        if rec.cached:  # no model worked for it: its tokens were saved, not spent
            self.cache_hits.labels(rec.model).inc()
            self.cache_saved.labels(rec.model).inc(rec.total_tokens)
        else:
            self._count_tokens(rec, prompt, completion)
        if rec.cost:
            cost.inc(rec.cost)
        latency.observe(rec.total_ms / 1000)
        if rec.ttft_ms is not None:
            ttft.observe(rec.ttft_ms / 1000)

    @staticmethod
    def _count_tokens(rec: UsageRecord, prompt: Any, completion: Any) -> None:
        if rec.prompt_tokens:
            prompt.inc(rec.prompt_tokens)
        if rec.completion_tokens:
            completion.inc(rec.completion_tokens)

    def _cache_series(self, config: Any) -> None:
        """Every model's cache counters from 0, so a scrape shows them before the first hit."""
        for name in config.models:
            for counter in (self.cache_hits, self.cache_misses, self.cache_saved):
                counter.labels(name)

    def cache_miss(self, model: str) -> None:
        """A cacheable request the cache did not hold (hits are counted from their usage rows)."""
        self.cache_misses.labels(model).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
