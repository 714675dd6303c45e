"""The other client protocols across a cluster (issue 17): a request in Anthropic's, the Responses or Ollama's protocol
for a model only another node has is relayed to that node as the client sent it, and that node admits, translates,
stores and accounts it as its own (keep_alive, stored responses and the usage row's endpoint as on one node). Batch
lines forwarded to another node keep their batch: served there at low priority, accounted to the batch.

Two managers share one real PostgreSQL; one pair serves the module. alpha has ``chat-a``; beta has ``chat-b`` and the
slow ``slow-b`` (one request at a time), which alpha knows only as beta's; both have ``big``, which only beta's
device can hold."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until
from postgres import create_database, drop_database

ADMIN, USER = "admin-protocols", "sk-protocols-user"
SECRET = "cluster-secret-for-the-protocol-tests"
PRICE = {"input": 1.0, "output": 2.0, "per": 1000}
SLOW_S = 0.2  # one slow-b answer: 5 tokens at 25 tokens/s
HI = [{"role": "user", "content": "hello from another protocol"}]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[dict[str, Any]]:
    url = create_database(postgres_url, "protocols")
    big = {"memory": {"gpu0": 24000}}  # alpha has "big" but cannot place it (8000 MB): beta can (48000 MB)
    models = {"alpha": {"chat-a": fake_model(), "big": fake_model(**big)},
              "beta": {"chat-b": fake_model(aliases=["bee"]), "big": fake_model(**big),
                       "slow-b": fake_model(args=["--tokens-per-second", "25"], max_concurrency=1, pricing=PRICE)}}
    gpus = {"alpha": {"gpu0": 8000}, "beta": {"gpu0": 48000}}
    nodes: dict[str, ManagerProcess] = {}
    try:
        for name, blocks in models.items():
            doc = config_doc(blocks, gpus[name], admin_key=ADMIN, database_url=url, node_name=name, cluster_secret=SECRET,
                             flush_interval=0.1, batch_discount=0.5, api_keys=[{"key": USER, "name": "user"}])
            nodes[name] = ManagerProcess(tmp_path_factory.mktemp(name), doc)
            nodes[name].http.headers["Authorization"] = f"Bearer {ADMIN}"
        assert wait_until(lambda: {"chat-b", "slow-b"} <= _listed(nodes["alpha"]), 30), "alpha never saw beta's models"
        yield {**nodes, "db": url.replace("postgresql+psycopg", "postgresql")}
    finally:
        for node in nodes.values():
            node.stop()
        drop_database(url)


def _listed(node: ManagerProcess) -> set[str]:
    return {m["id"] for m in node.http.get("/v1/models").json()["data"]}


def usage(cluster: dict[str, Any], where: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of the cluster's one request log (every node writes there)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(cluster["db"], row_factory=dict_row) as conn:
        return list(conn.execute(f"SELECT * FROM request_log WHERE {where} ORDER BY id", args))


def counted(cluster: dict[str, Any], endpoint: str, n: int) -> list[dict[str, Any]]:
    """The ``endpoint`` rows once there are ``n`` (each node flushes within its interval); fails on more."""
    found = wait_until(lambda: (r := usage(cluster, "endpoint = %s", endpoint)) and len(r) >= n and r, 15)
    assert found and len(found) == n, f"{endpoint}: expected {n} rows, got {found}"
    return found


def test_anthropic_messages_for_a_model_only_the_peer_has(cluster: dict[str, Any]) -> None:
    alpha, beta = cluster["alpha"], cluster["beta"]
    client = anthropic.Anthropic(base_url=alpha.url, api_key=USER, max_retries=0, timeout=60)
    direct = anthropic.Anthropic(base_url=beta.url, api_key=USER, max_retries=0, timeout=60)
    raw = client.messages.with_raw_response.create(model="chat-b", max_tokens=5, messages=HI)
    message = raw.parse()
    assert raw.headers["X-LLM-Manager-Node"] == "beta" and message.type == "message"
    expected = direct.messages.create(model="chat-b", max_tokens=5, messages=HI).content[0].text
    assert message.content[0].text == expected and message.usage.output_tokens == 5
    with client.messages.stream(model="bee", max_tokens=5, messages=HI) as stream:  # an alias of beta's
        assert stream.get_final_text() == expected
    assert client.messages.count_tokens(model="chat-b", messages=[{"role": "user", "content": "one two three"}]
                                        ).input_tokens == len("user: one two three".split())  # beta's /tokenize
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="nowhere", max_tokens=5, messages=HI)
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=alpha.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="chat-b", max_tokens=5, messages=HI)
    rows = counted(cluster, "messages", 3)  # once each, on beta: the entry node counts nothing
    assert [(r["node"], r["entry_node"]) for r in rows] == [("beta", "alpha"), ("beta", ""), ("beta", "alpha")]
    assert all(r["key_id"] == "cfg:user" and r["model"] == "chat-b" and r["completion_tokens"] == 5 for r in rows)
    assert [r["alias"] for r in rows][-1] == "bee"
    assert [(r["node"], r["entry_node"]) for r in counted(cluster, "messages/count_tokens", 1)] == [("beta", "alpha")]


def test_responses_through_the_entry_node_with_stored_turns(cluster: dict[str, Any]) -> None:
    alpha, beta = cluster["alpha"], cluster["beta"]
    client = openai.OpenAI(base_url=alpha.url + "/v1", api_key=USER, max_retries=0, timeout=60)
    first = client.responses.create(model="chat-b", input="first turn", max_output_tokens=4)
    assert first.status == "incomplete" and len(first.output_text.split()) == 4  # cut at max_output_tokens
    second = client.responses.create(model="chat-b", input="second turn", previous_response_id=first.id,
                                     max_output_tokens=4, stream=True)
    done = [e for e in second if e.type in ("response.completed", "response.incomplete")]
    assert len(done) == 1 and done[0].response.previous_response_id == first.id
    assert client.responses.retrieve(first.id).output_text == first.output_text  # one store for the cluster
    direct = openai.OpenAI(base_url=beta.url + "/v1", api_key=USER, max_retries=0)
    assert direct.responses.retrieve(done[0].response.id).id == done[0].response.id
    rows = counted(cluster, "responses", 2)
    assert [(r["node"], r["entry_node"], r["stream"]) for r in rows] == [("beta", "alpha", False),
                                                                          ("beta", "alpha", True)]
    assert rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"]  # the stored first turn went with the second


def test_ollama_chat_and_generate_through_the_entry_node(cluster: dict[str, Any]) -> None:
    alpha, beta = cluster["alpha"], cluster["beta"]
    auth = {"Authorization": f"Bearer {USER}"}
    client, direct = ollama.Client(host=alpha.url, headers=auth), ollama.Client(host=beta.url, headers=auth)
    assert {"chat-a:latest", "chat-b:latest", "slow-b:latest"} <= {m.model for m in client.list().models}
    r = client.chat(model="chat-b:latest", messages=HI, options={"num_predict": 5})
    assert r.model == "chat-b:latest" and r.done and r.eval_count == 5
    assert r.message.content == direct.chat(model="chat-b", messages=HI, options={"num_predict": 5}).message.content
    parts = list(client.chat(model="chat-b", messages=HI, stream=True, options={"num_predict": 6}))
    assert len(parts) == 7 and [p.done for p in parts] == [False] * 6 + [True]
    assert "".join(p.message.content for p in parts) == direct.chat(
        model="chat-b", messages=HI, options={"num_predict": 6}).message.content
    g = client.generate(model="chat-b", prompt="say something", stream=False, options={"num_predict": 3})
    assert g.done and len(g.response.split()) == 3
    client.chat(model="chat-b", messages=HI, options={"num_predict": 1}, keep_alive="10m")
    loaded = {m.model: m for m in direct.ps().models}  # the serving node took the keep_alive
    assert 590 < loaded["chat-b:latest"].expires_at.timestamp() - __import__("time").time() <= 600
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="nowhere:latest", messages=HI)
    assert err.value.status_code == 404 and "nowhere" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:  # beta's checks answer, in Ollama's shape
        client.chat(model="chat-b", messages=HI, keep_alive="soon")
    assert err.value.status_code == 400 and "keep_alive" in err.value.error
    rows = counted(cluster, "api/chat", 5)
    assert {(r["node"], r["entry_node"]) for r in rows} == {("beta", "alpha"), ("beta", "")}
    assert [r["entry_node"] for r in rows].count("alpha") == 3
    assert [(r["node"], r["entry_node"]) for r in counted(cluster, "api/generate", 1)] == [("beta", "alpha")]


def chat_line(cid: str, model: str) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": f"hi {cid}"}]}}


def test_batch_lines_forwarded_to_the_peer_keep_their_batch(cluster: dict[str, Any]) -> None:
    """30 lines for beta's slow-b (one at a time) from a batch on alpha queue at beta at low priority: requests
    sent meanwhile wait for the line in flight only, never behind the queued lines (FIFO would be ~3 s); every
    line is counted once, on beta, to the batch (its discount applied)."""
    alpha = cluster["alpha"]
    client = openai.OpenAI(base_url=alpha.url + "/v1", api_key=USER, max_retries=0, timeout=60)
    data = b"".join(json.dumps(chat_line(f"s{i}", "slow-b")).encode() + b"\n" for i in range(30))
    upload = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 2, 60)
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(model="slow-b", max_tokens=5, messages=HI)
        assert raw.headers["X-LLM-Manager-Node"] == "beta"
    assert client.batches.retrieve(batch.id).status == "in_progress"  # the lines were still queued at beta
    interactive = wait_until(lambda: len(r := usage(cluster, "model = 'slow-b' AND batch_id IS NULL")) >= 4 and r, 15)
    assert interactive and len(interactive) == 4
    waits = [r["queue_ms"] for r in interactive]
    assert max(waits) < 1000 * SLOW_S * 3 + 300, waits
    done = wait_until(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, 60)
    assert done and done.request_counts.completed == 30 and done.request_counts.failed == 0
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert len(out) == 30 and {o["response"]["status_code"] for o in out} == {200}
    lines = wait_until(lambda: len(r := usage(cluster, "batch_id = %s", batch.id)) >= 30 and r, 15)
    assert lines and len(lines) == 30, "each line is counted once, to its batch"
    assert {(r["node"], r["entry_node"], r["key_id"], r["status"]) for r in lines} == {("beta", "alpha", "cfg:user", 200)}
    for r in lines:  # beta's batch_discount (0.5) off its price
        assert r["cost"] == pytest.approx((r["prompt_tokens"] * 1.0 + r["completion_tokens"] * 2.0) / 1000 * 0.5)


def test_a_batch_header_without_the_cluster_secret_is_ignored(cluster: dict[str, Any]) -> None:
    beta = cluster["beta"]
    body = {"model": "chat-b", "max_tokens": 2, "messages": HI}
    headers = {"Authorization": f"Bearer {USER}", "X-LLM-Manager-Batch-Id": "batch_forged"}
    r = httpx.post(beta.url + "/v1/chat/completions", json=body, headers=headers, trust_env=False, timeout=60)
    assert r.status_code == 200
    rows = wait_until(lambda: usage(cluster, "model = 'chat-b' AND endpoint = 'chat/completions'"), 15)
    assert rows and [row["batch_id"] for row in rows] == [None]
    forged = {**headers, "X-LLM-Manager-Cluster-Secret": "not-the-secret"}
    r = httpx.post(beta.url + "/v1/chat/completions", json=body, headers=forged, trust_env=False, timeout=60)
    assert r.status_code == 401 and not usage(cluster, "batch_id = 'batch_forged'")


def test_a_model_the_entry_cannot_place_goes_to_the_peer_as_the_client_sent_it(cluster: dict[str, Any]) -> None:
    """alpha knows ``big`` (and would translate for it) but cannot place it: beta gets the client's own request, in
    its protocol, and translates and accounts it (the usage row's endpoint is the protocol's)."""
    alpha = cluster["alpha"]
    client = anthropic.Anthropic(base_url=alpha.url, api_key=USER, max_retries=0, timeout=60)
    raw = client.messages.with_raw_response.create(model="big", max_tokens=3, messages=HI)
    assert raw.headers["X-LLM-Manager-Node"] == "beta" and len(raw.parse().content[0].text.split()) == 3
    chat = ollama.Client(host=alpha.url, headers={"Authorization": f"Bearer {USER}"})
    parts = list(chat.chat(model="big:latest", messages=HI, stream=True, options={"num_predict": 2}))
    assert [p.done for p in parts] == [False, False, True] and parts[-1].model == "big:latest"
    found = wait_until(lambda: len(r := usage(cluster, "model = 'big' AND status = 200")) >= 2 and r, 15)
    assert found and [(r["endpoint"], r["node"], r["entry_node"]) for r in found] == [
        ("messages", "beta", "alpha"), ("api/chat", "beta", "alpha")]
