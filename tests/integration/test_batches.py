"""OpenAI's Files and Batches API through a real manager process, driven by the official openai SDK: output and
error files, low priority next to interactive requests, kill -9 and resume, cancel, expiry, keys and discounts."""

from __future__ import annotations

import io
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest
from helpers import ManagerProcess, config_doc, fake_model, pids_alive, wait_until

KEY_A, KEY_B, ADMIN = "sk-batch-a", "sk-batch-b", "sk-batch-admin"
PRICE = {"input": 1.0, "output": 2.0, "per": 1000}
SLOW_S = 0.2  # one slow line: 5 tokens at 25 tokens/s


def models() -> dict[str, Any]:
    return {
        "chat": fake_model("Chat", pricing=PRICE, max_concurrency=4),
        "chat2": fake_model("Chat", aliases=["c2"], max_concurrency=4, batch_discount=0.0, pricing=PRICE),
        "embed": fake_model("Embedding"),
        "slow": fake_model("Chat", args=["--tokens-per-second", "25"], max_concurrency=1),
    }


def doc(**program: Any) -> dict[str, Any]:
    return config_doc(models(), flush_interval=0.05, admin_key=ADMIN, batch_discount=0.5,
                      api_keys=[{"key": KEY_A, "name": "a"}, {"key": KEY_B, "name": "b", "models": ["embed"]}],
                      **program)


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Any:
    m = ManagerProcess(tmp_path_factory.mktemp("batches"), doc())
    yield m
    m.stop()


def sdk(mgr: ManagerProcess, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key=key, max_retries=0, timeout=30)


def chat_line(cid: str, model: str, tokens: int = 5) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "max_tokens": tokens, "messages": [{"role": "user", "content": f"hi {cid}"}]}}


def upload(client: openai.OpenAI, lines: list[Any]) -> str:
    data = b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines)
    return client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch").id


def run_batch(client: openai.OpenAI, lines: list[Any], endpoint: str = "/v1/chat/completions",
              window: str = "24h") -> Any:
    return client.batches.create(input_file_id=upload(client, lines), endpoint=endpoint,  # type: ignore[arg-type]
                                 completion_window=window, metadata={"test": "yes"})  # type: ignore[arg-type]


def wait_status(client: openai.OpenAI, batch_id: str, statuses: tuple[str, ...], timeout: float = 60) -> Any:
    batch = wait_until(lambda: (b := client.batches.retrieve(batch_id)).status in statuses and b, timeout, 0.05)
    assert batch, f"batch {batch_id} not {statuses}: {client.batches.retrieve(batch_id)}"
    return batch


def jsonl(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    return [] if file_id is None else [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def usage_rows(mgr: ManagerProcess, batch_id: str | None) -> list[dict[str, Any]]:
    with sqlite3.connect(mgr.data_dir / "usage.db") as db:
        db.row_factory = sqlite3.Row
        where = "batch_id = ?" if batch_id else "batch_id IS NULL"
        return [dict(r) for r in db.execute(f"SELECT * FROM request_log WHERE {where}", (batch_id,) if batch_id else ())]


def test_a_batch_of_200_mixed_lines_gives_its_output_and_error_files(mgr: ManagerProcess) -> None:
    client = sdk(mgr)
    good = [chat_line(f"req-{i}", ("chat", "c2")[i % 2]) for i in range(170)]
    unknown = [chat_line(f"nomodel-{i}", "no-such-model") for i in range(5)]
    bad: list[Any] = [b"{not json"] * 5
    bad += [{k: v for k, v in chat_line(f"nobody-{i}", "chat").items() if k != "body"} for i in range(5)]
    bad += [{**chat_line(f"wrongurl-{i}", "embed"), "url": "/v1/embeddings"} for i in range(5)]
    bad += [chat_line(f"req-{i}", "chat") for i in range(5)]  # duplicates of good custom_ids
    bad += [{**chat_line(f"get-{i}", "chat"), "method": "GET"} for i in range(5)]
    lines = good[:80] + bad + unknown + good[80:]
    assert len(lines) == 200
    batch = run_batch(client, lines)
    assert batch.status == "in_progress" and batch.metadata == {"test": "yes"} and batch.request_counts.total == 200
    batch = wait_status(client, batch.id, ("completed",))
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (200, 170, 30)
    out, err = jsonl(client, batch.output_file_id), jsonl(client, batch.error_file_id)
    assert [o["custom_id"] for o in out] == [g["custom_id"] for g in good]  # input order
    assert all(o["response"]["status_code"] == 200 and o["error"] is None for o in out)
    assert out[1]["response"]["body"]["model"] == "chat2" and out[1]["response"]["body"]["choices"][0]["message"]
    codes = Counter((e["error"] or {}).get("code") or e["response"]["status_code"] for e in err)
    assert codes == {"invalid_json": 5, "missing_required_parameter": 5, "mismatched_url": 5,
                     "duplicate_custom_id": 5, "invalid_method": 5, 404: 5}
    rows = usage_rows(mgr, batch.id)
    assert len(rows) == 170 and all(r["status"] == 200 for r in rows)
    for r in rows:  # program.batch_discount 0.5 halves chat's price; chat2 sets its own 0
        full = (r["prompt_tokens"] * 1.0 + r["completion_tokens"] * 2.0) / 1000
        assert r["cost"] == pytest.approx(full * (0.5 if r["model"] == "chat" else 1.0))
    assert client.batches.retrieve(batch.id).output_file_id == batch.output_file_id


def test_an_embeddings_batch_and_the_files_api(mgr: ManagerProcess) -> None:
    client = sdk(mgr)
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "embed", "input": f"text {i}"}} for i in range(20)]
    batch = wait_status(client, run_batch(client, lines, "/v1/embeddings").id, ("completed",))
    out = jsonl(client, batch.output_file_id)
    assert len(out) == 20 and out[0]["response"]["body"]["data"][0]["embedding"] and batch.error_file_id is None
    listed = {f.id for f in client.files.list()}
    assert {batch.input_file_id, batch.output_file_id} <= listed
    assert client.files.retrieve(batch.input_file_id).purpose == "batch"
    assert client.files.delete(batch.input_file_id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(batch.input_file_id)


def test_keys_see_their_own_batches_and_lines_run_with_the_creating_keys_rights(mgr: ManagerProcess) -> None:
    a, b = sdk(mgr, KEY_A), sdk(mgr, KEY_B)
    mine = run_batch(b, [chat_line("x", "chat")])  # key b may use only "embed"
    with pytest.raises(openai.NotFoundError):
        a.batches.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        a.files.content(mine.input_file_id)
    with pytest.raises(openai.AuthenticationError):
        sdk(mgr, "sk-wrong").batches.list()
    done = wait_status(b, mine.id, ("completed",))
    (err,) = jsonl(b, done.error_file_id)
    assert err["response"]["status_code"] == 403 and "may not use model" in err["response"]["body"]["error"]["message"]
    assert mine.id in {x.id for x in sdk(mgr, ADMIN).batches.list(limit=100)}
    assert mine.id not in {x.id for x in a.batches.list(limit=100)}


def test_listing_pages_with_after_and_limit(mgr: ManagerProcess) -> None:
    client = sdk(mgr)
    made = [run_batch(client, [chat_line("p", "chat")]).id for _ in range(3)]
    page = client.batches.list(limit=2)
    assert [x.id for x in page.data] == made[::-1][:2] and page.has_more
    rest = client.batches.list(limit=2, after=page.data[-1].id)
    assert rest.data[0].id == made[0]
    seen = [x.id for x in client.batches.list(limit=2)]  # the SDK's auto-pagination follows ``after``
    assert len(seen) == len(set(seen)) and set(made) <= set(seen)


def test_interactive_requests_wait_behind_at_most_one_line(mgr: ManagerProcess) -> None:
    """slow: max_concurrency 1; 30 lines of SLOW_S each queue at low priority; an interactive request arriving
    meanwhile waits for the line in flight only, never for the queue of lines."""
    client = sdk(mgr)
    batch = run_batch(client, [chat_line(f"s{i}", "slow") for i in range(30)])
    assert wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 2, 30)
    for _ in range(4):
        client.chat.completions.create(model="slow", max_tokens=5, messages=[{"role": "user", "content": "now"}])
    assert client.batches.retrieve(batch.id).status == "in_progress"  # the lines were still queued
    assert wait_until(lambda: len([r for r in usage_rows(mgr, None) if r["model"] == "slow"]) == 4, 10)
    waits = [r["queue_ms"] for r in usage_rows(mgr, None) if r["model"] == "slow"]
    assert max(waits) < 1000 * SLOW_S * 1.5 + 150, waits  # FIFO behind 16 queued lines would be ~3200 ms
    client.batches.cancel(batch.id)
    wait_status(client, batch.id, ("cancelled",))


def test_cancel_stops_promptly_and_reports_every_line(mgr: ManagerProcess) -> None:
    client = sdk(mgr)
    batch = run_batch(client, [chat_line(f"c{i}", "slow") for i in range(40)])
    assert wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 1, 30)
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    done = wait_status(client, batch.id, ("cancelled",), 5)
    out, err = jsonl(client, done.output_file_id), jsonl(client, done.error_file_id)
    assert 1 <= len(out) < 40 and {e["error"]["code"] for e in err} == {"batch_cancelled"}
    assert sorted(x["custom_id"] for x in out + err) == sorted(f"c{i}" for i in range(40))
    assert done.cancelled_at and done.cancelling_at


def test_a_short_completion_window_expires_the_unrun_lines(mgr: ManagerProcess) -> None:
    client = sdk(mgr)
    batch = run_batch(client, [chat_line(f"x{i}", "slow") for i in range(40)], window="1s")
    done = wait_status(client, batch.id, ("expired",), 15)
    out, err = jsonl(client, done.output_file_id), jsonl(client, done.error_file_id)
    assert len(out) < 40 and err and {e["error"]["code"] for e in err} == {"batch_expired"}
    assert sorted(x["custom_id"] for x in out + err) == sorted(f"x{i}" for i in range(40))
    assert done.expired_at and done.expires_at - done.created_at == 1


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_a_restart_mid_batch_finishes_each_line_exactly_once(tmp_path: Path, how: str) -> None:
    config = doc()
    first = ManagerProcess(tmp_path, config)
    client = sdk(first)
    n = 40
    batch = run_batch(client, [chat_line(f"k{i}", "slow", 2) for i in range(n)])
    assert wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 5, 30)
    models_info = first.http.get("/api/models-info", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    backend = next(m["pid"] for m in models_info["models"] if m["name"] == "slow")
    if how == "kill -9":
        first.proc.kill()  # no shutdown code runs
        first.proc.wait(10)
    first.stop()  # SIGTERM: lines in flight are cancelled (499 rows) and run again after the restart
    assert wait_until(lambda: not pids_alive([backend]), 10), "the model died with its manager"
    second = ManagerProcess(tmp_path, config)  # same config file and data dir
    try:
        client = sdk(second)
        done = wait_status(client, batch.id, ("completed",), 60)
        out = jsonl(client, done.output_file_id)
        assert Counter(o["custom_id"] for o in out) == Counter(f"k{i}" for i in range(n))
        assert done.request_counts.completed == n and done.error_file_id is None
        rows = [r for r in usage_rows(second, batch.id) if r["status"] == 200]
        assert len(rows) == n  # one usage row per line: none lost, none doubled
    finally:
        second.stop()
