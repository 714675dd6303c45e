"""Edges of the OpenAI surface (issue 14): the WebUI catch-all, unknown paths and endpoints, rerank's other
paths, the common request fields, upstream timeouts and key-scoped model lists, through a real manager."""

from __future__ import annotations

import httpx
import pytest
from helpers import ManagerProcess, config_doc, fake_model

ALL_KEY = "sk-polish-all"
CHAT_KEY = "sk-polish-chat"
MESSAGES = [{"role": "user", "content": "one two three"}]
RERANK = {"model": "rerank", "query": "red apple", "documents": ["blue sky", "a red apple", "green tree"], "top_n": 2}


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("polish")
    dist = tmp / "dist"
    dist.mkdir()  # the WebUI starts out not built
    doc = config_doc({
        "chat": fake_model("Chat", aliases=["chat-alias"]),
        "embed": fake_model("Embedding"),
        "rerank": fake_model("Reranker"),
        "slow": fake_model("Chat", args=["--tokens-per-second", "2"], request_timeout=0.5),
    }, api_keys=[{"key": ALL_KEY, "name": "all"}, {"key": CHAT_KEY, "name": "chatonly", "models": ["chat-alias"]}])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_MANAGER_WEBUI_DIST", str(dist))
        m = ManagerProcess(tmp, doc)
    m.http.headers["Authorization"] = f"Bearer {ALL_KEY}"
    m.dist = dist
    yield m
    m.stop()


def assert_openai_error(r: httpx.Response, status: int, *needles: str, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    for needle in needles:
        assert needle in err["message"], err
    if param is not None:
        assert err["param"] == param, err
    return err


def test_webui_catch_all_serves_the_not_built_page_then_the_build(mgr):
    for path in ("/", "/health", "/some/client/route", "/index.html", "/index.html%00/x"):
        r = mgr.http.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html") and "not built yet" in r.text, path
    assert mgr.http.head("/").status_code == 200

    (mgr.dist / "assets").mkdir()
    (mgr.dist / "index.html").write_text("<!doctype html><title>tiny app</title>")
    (mgr.dist / "assets" / "app.js").write_text("console.log('tiny')")
    for path in ("/", "/health", "/some/client/route", "/" + "a" * 300):  # client-side routes: index.html
        r = mgr.http.get(path)
        assert r.status_code == 200 and "tiny app" in r.text, (path, r.status_code, r.text[:300])
    assert mgr.http.get("/assets/app.js").text == "console.log('tiny')"
    assert_openai_error(mgr.http.get("/index.html%00/x"), 404)
    assert mgr.http.get("/").status_code == 200  # and the server goes on serving


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/", "/foo", "/health", "/chat/completions", "/v3/rerank"])
def test_unknown_paths_get_a_json_404_whatever_the_method(mgr, method, path):
    r = mgr.http.request(method, path, json={"model": "chat", "messages": MESSAGES})
    assert_openai_error(r, 404, f"{method} {path}")


def test_rerank_is_also_served_at_cohere_paths(mgr):
    base = mgr.http.post("/v1/rerank", json=RERANK)
    assert base.status_code == 200, base.text
    for path in ("/rerank", "/v2/rerank"):
        r = mgr.http.post(path, json=RERANK)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["results"] == base.json()["results"] and r.json()["results"][0]["index"] == 1
    recent = mgr.http.get("/api/usage/recent", params={"limit": 3}).json()["requests"]
    assert [(x["model"], x["endpoint"], x["status"]) for x in recent] == [("rerank", "rerank", 200)] * 3
    assert_openai_error(mgr.http.post("/v2/rerank", json={**RERANK, "model": "chat"}), 400,
                        "model chat is a Chat model; use /v1/chat/completions", param="model")
    assert_openai_error(mgr.http.post("/v2/rerank", json={**RERANK, "documents": []}), 400, "documents",
                        param="documents")


@pytest.mark.parametrize("body", [{"model": "chat", "messages": MESSAGES}, {"model": "chat"}, {}, None])
def test_an_unknown_endpoint_is_404_before_the_body_is_read(mgr, body):
    kw = {"json": body} if body is not None else {"content": b"{not json", "headers": {"content-type": "application/json"}}
    err = assert_openai_error(mgr.http.post("/v1/foo", **kw), 404, "/v1/foo", "/v1/chat/completions")
    assert "missing" not in err["message"] and "use /v1" not in err["message"]


def test_get_on_v1_paths(mgr):
    assert_openai_error(mgr.http.get("/v1/foo"), 404, "GET /v1/foo")
    assert_openai_error(mgr.http.get("/v1/chat/completions"), 405)  # a real endpoint: wrong method


@pytest.mark.parametrize("model", [5, "", ["chat"], {"name": "chat"}, True])
def test_a_model_that_is_not_a_string(mgr, model):
    r = mgr.http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    err = assert_openai_error(r, 400, "model must be a non-empty string", param="model")
    assert "missing" not in err["message"]


def test_mode_names_take_the_right_article(mgr):
    r = mgr.http.post("/v1/chat/completions", json={"model": "embed", "messages": MESSAGES})
    assert_openai_error(r, 400, "model embed is an Embedding model; use /v1/embeddings", param="model")
    r = mgr.http.post("/v1/embeddings", json={"model": "chat", "input": "x"})
    assert_openai_error(r, 400, "model chat is a Chat model", param="model")


@pytest.mark.parametrize("field, value", [
    ("max_tokens", -5), ("max_tokens", "lots"), ("max_tokens", 2.5), ("max_tokens", True),
    ("max_completion_tokens", 0), ("n", 0), ("n", "2"), ("temperature", 2.5), ("temperature", -0.1),
    ("temperature", "hot"), ("top_p", 1.5), ("presence_penalty", -2.5), ("frequency_penalty", 9),
    ("seed", "x"), ("seed", 1.5), ("top_k", -2), ("top_k", "all"), ("logprobs", -1), ("logprobs", "yes"),
    ("top_logprobs", 21), ("stream", "yes"), ("stream", 1),
])
def test_common_fields_are_checked_with_param_set(mgr, field, value):
    r = mgr.http.post("/v1/chat/completions", json={"model": "chat", "messages": MESSAGES, field: value})
    err = assert_openai_error(r, 400, field, param=field)
    assert err["type"] == "invalid_request_error"


def test_a_nan_is_not_a_number(mgr):  # Python's json module reads NaN, which is not JSON
    raw = b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}'
    r = mgr.http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert_openai_error(r, 400, "temperature must be a number", param="temperature")


def test_valid_and_null_common_fields_pass(mgr):
    body = {"model": "chat", "messages": MESSAGES, "max_tokens": 3, "temperature": 0, "top_p": 1.0,
            "presence_penalty": -2, "frequency_penalty": 2.0, "seed": -1, "top_k": 0, "n": 1, "logprobs": False,
            "top_logprobs": 0, "stream": False, "max_completion_tokens": None, "stream_options": None}
    r = mgr.http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 3
    r = mgr.http.post("/v1/completions", json={"model": "chat", "prompt": "x", "max_tokens": 2, "logprobs": 2})
    assert r.status_code == 200, r.text
    r = mgr.http.post("/v1/chat/completions", json={"model": "chat", "messages": MESSAGES, "max_tokens": -1})
    assert r.status_code == 200, r.text  # llama-server's "no limit": the fake backend then generates its default 16
    assert r.json()["usage"]["completion_tokens"] == 16


def test_an_upstream_timeout_does_not_show_the_internal_address(mgr):
    port = str(mgr.models()["slow"]["port"])
    r = mgr.http.post("/v1/chat/completions", json={"model": "slow", "messages": MESSAGES, "max_tokens": 20})
    err = assert_openai_error(r, 504, "model slow", "0.5 s", "request_timeout")
    assert "127.0.0.1" not in r.text and port not in err["message"] and "http" not in err["message"]
    assert f"http://127.0.0.1:{port}/v1/chat/completions (model slow)" in mgr.log_path.read_text()  # for the operator


def test_a_scoped_key_lists_only_its_models(mgr):
    scoped = {"Authorization": f"Bearer {CHAT_KEY}"}
    ids = {m["id"] for m in httpx.get(mgr.url + "/v1/models", headers=scoped).json()["data"]}
    assert ids == {"chat", "chat-alias"}
    everything = {m["id"] for m in mgr.http.get("/v1/models").json()["data"]}
    assert everything == {"chat", "chat-alias", "embed", "rerank", "slow"}
    assert httpx.get(mgr.url + "/v1/models/chat-alias", headers=scoped).json()["id"] == "chat"
    err = assert_openai_error(httpx.get(mgr.url + "/v1/models/embed", headers=scoped), 404, "embed", param="model")
    assert "slow" not in err["message"] and "available_models" not in err
    assert_openai_error(httpx.get(mgr.url + "/v1/models", headers={"Authorization": "Bearer sk-wrong"}), 401)
