"""Swap-aware scheduling (issue 19): a start that needs memory held by busy or freshly loaded models waits for them
(their requests go on), a loaded model stays min_residency seconds, and aging drains the models in the way so no
start waits longer than max_wait. ``scheduler: "fifo"`` keeps the old behaviour: busy holders mean 503 at once (a
client retries after Retry-After), idle ones are evicted at once; interleaved requests make it thrash where
swap-aware does not."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.helpers import ManagerProcess, config_doc, fake_model, wait_until

GPUS = {"gpu": 10000}


def ask(mgr: ManagerProcess, model: str, tokens: int = 2) -> Any:
    return mgr.http.post("/v1/chat/completions", timeout=120, json={
        "model": model, "max_tokens": tokens, "messages": [{"role": "user", "content": "hi"}]})


def events(mgr: ManagerProcess) -> list[dict[str, Any]]:
    return mgr.http.get("/api/events").json()["events"]


def two_models(**program: Any) -> dict[str, Any]:
    return config_doc({"a": fake_model(memory={"gpu": 6000}, args=["--tokens-per-second", "10"]),
                       "b": fake_model(memory={"gpu": 6000})}, GPUS, **program)


def test_a_start_waits_for_a_busy_model_instead_of_failing(tmp_path: Path) -> None:
    mgr = ManagerProcess(tmp_path, two_models(min_residency=0, max_wait=60))
    try:
        assert ask(mgr, "a").status_code == 200
        with ThreadPoolExecutor(2) as pool:
            busy = pool.submit(ask, mgr, "a", 20)  # about 2 s of work
            assert wait_until(lambda: mgr.models()["a"]["in_flight"] == 1, 10)
            waiting = pool.submit(ask, mgr, "b")
            assert busy.result().status_code == 200
            assert waiting.result().status_code == 200  # served once a finished: no 503
        kinds = [(e["kind"], e["model"]) for e in events(mgr)]
        assert ("swap-wait", "b") in kinds and kinds.index(("swap-wait", "b")) < kinds.index(("evict", "a"))
    finally:
        mgr.stop()


def test_a_fresh_model_stays_min_residency_before_it_is_evicted(tmp_path: Path) -> None:
    mgr = ManagerProcess(tmp_path, two_models(min_residency=3, max_wait=60))
    try:
        assert ask(mgr, "a").status_code == 200
        assert ask(mgr, "b").status_code == 200  # a is idle but fresh: b waits for its residency
        by_kind = {(e["kind"], e["model"]): e for e in events(mgr)}
        a_ready, a_evicted = by_kind[("ready", "a")]["ts"], by_kind[("evict", "a")]["ts"]
        assert a_evicted - a_ready >= 3.0
        assert "loaded" in by_kind[("swap-wait", "b")]["detail"]
    finally:
        mgr.stop()


def test_aging_drains_a_model_that_is_always_busy(tmp_path: Path) -> None:
    # max_wait leaves room for slow starts: a's queued requests wait through b's start and answer, then a's own
    # start, and on a loaded CI machine each start of the fake backend can take seconds.
    doc = two_models(min_residency=0, max_wait=16)
    doc["a"]["max_concurrency"] = 1  # one serves while the others queue: a is never idle between two requests
    mgr = ManagerProcess(tmp_path, doc)
    try:
        assert ask(mgr, "a").status_code == 200
        stop = time.monotonic() + 45
        with ThreadPoolExecutor(4) as pool:  # three feeders: a is never idle, not even between two requests
            def keep_a_busy() -> list[int]:
                codes = []
                while time.monotonic() < stop and not (b_asked and b.done()):
                    codes.append(ask(mgr, "a", 5).status_code)
                return codes

            b_asked: list[float] = []
            feeders = [pool.submit(keep_a_busy) for _ in range(3)]
            assert wait_until(lambda: mgr.models()["a"]["queued"] >= 1, 20)  # a is busy before b asks
            asked = time.monotonic()
            b = pool.submit(ask, mgr, "b")
            b_asked.append(asked)  # after b exists: the feeders stop once it is answered
            assert b.result().status_code == 200
            b_waited = time.monotonic() - b_asked[0]
            codes = [c for f in feeders for c in f.result()]
        assert b_waited < 16 + 8, b_waited  # max_wait, plus the start itself
        assert set(codes) == {200}, codes  # a's requests waited through the swap; none was lost
        assert [e for e in events(mgr) if e["kind"] == "drain" and e["model"] == "a"]
    finally:
        mgr.stop()


def test_fifo_fails_at_once_when_the_holder_is_busy(tmp_path: Path) -> None:
    mgr = ManagerProcess(tmp_path, two_models(scheduler="fifo"))
    try:
        assert ask(mgr, "a").status_code == 200
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(ask, mgr, "a", 20)
            assert wait_until(lambda: mgr.models()["a"]["in_flight"] == 1, 10)
            r = ask(mgr, "b")
            assert r.status_code == 503 and "Retry-After" in r.headers
            assert busy.result().status_code == 200
    finally:
        mgr.stop()


def replay(tmp: Path, scheduler: str, max_wait: float) -> tuple[int, list[tuple[int, float]]]:
    """Round-robin requests for a, b, c (two fit) every 0.15 s: (evictions, [(status, seconds)]). Evictions are
    counted from the models' logs (the event list the API shows is bounded)."""
    models = {m: fake_model(memory={"gpu": 4000}, args=["--tokens-per-second", "20"]) for m in "abc"}
    tmp.mkdir()
    mgr = ManagerProcess(tmp, config_doc(models, GPUS, scheduler=scheduler, max_wait=max_wait))  # min_residency 10
    try:
        began = time.monotonic()

        def one(i: int) -> tuple[int, float]:
            time.sleep(max(0.0, began + 0.15 * i - time.monotonic()))  # the workload's arrival schedule
            asked = time.monotonic()
            while True:  # a refused client comes back after Retry-After, as a well-behaved one does (fifo refuses)
                r = ask(mgr, "abc"[i % 3], 4)
                if r.status_code != 503 or time.monotonic() - asked > 90:
                    return r.status_code, time.monotonic() - asked
                time.sleep(min(5.0, float(r.headers.get("Retry-After", "1"))))

        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(one, range(30)))
        swaps = sum(1 for m in "abc" for x in mgr.http.get(f"/api/logs/{m}", params={"lines": 5000}).json()["lines"]
                    if x["stream"] == "manager" and x["line"].startswith("state stopping: evicted"))
        return swaps, answers
    finally:
        mgr.stop()


def test_interleaved_requests_for_three_models_swap_less_than_fifo_within_max_wait(tmp_path: Path) -> None:
    fifo_swaps, fifo = replay(tmp_path / "fifo", "fifo", 60)
    aware_swaps, aware = replay(tmp_path / "aware", "swap-aware", 30)
    assert {code for code, _ in fifo + aware} == {200}, (fifo, aware)
    assert aware_swaps < fifo_swaps, (aware_swaps, fifo_swaps)
    assert max(seconds for _, seconds in aware) < 30, aware  # no request waited past max_wait


def test_past_its_residency_an_idle_model_stays_as_long_as_its_reload_before_eviction(tmp_path: Path) -> None:
    doc = config_doc({"a": fake_model(memory={"gpu": 6000}, args=["--load-delay", "1.5"]),
                      "b": fake_model(memory={"gpu": 6000})}, GPUS, min_residency=0, max_wait=60)
    mgr = ManagerProcess(tmp_path, doc)
    try:
        assert ask(mgr, "a").status_code == 200
        a_answered = time.time()
        assert ask(mgr, "b").status_code == 200  # one request: it waits until a has sat idle as long as a reload
        by_kind = {(e["kind"], e["model"]): e for e in events(mgr)}
        a_load = float(by_kind[("ready", "a")]["detail"].split()[1])  # "in 1.93 s (spawn ...)": what it learned
        assert by_kind[("evict", "a")]["ts"] - a_answered >= a_load - 0.2  # FIFO would have evicted it at once
        assert "kept until it has sat idle" in by_kind[("swap-wait", "b")]["detail"]
    finally:
        mgr.stop()
