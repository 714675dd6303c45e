"""Runtime cost, GPU time and energy through a real manager: a fake model on a simulated GPU, two keys, and
/api/usage/costs, /api/budgets (GPU-hours) and /api/usage/reprice (a dated price book) read back over HTTP."""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until

ADMIN = "sk-admin-costs"
KEY_A, KEY_B = "sk-costs-a", "sk-costs-b"
PRICE_PER_HOUR = 36.0  # 0.01 a second
IDLE_W, LOADED_W = 50.0, 50.0 + 250.0 * 2000 / 8000  # the simulated GPU: idle, and with chat's 2000 of 8000 MB


def doc():
    return config_doc({"chat": fake_model("Chat", memory={"gpu0": 2000}, price_per_hour=PRICE_PER_HOUR,
                                          pricing={"input": 1.0, "output": 2.0, "per": 1000})},
                      gpus={"gpu0": 8000}, admin_key=ADMIN, flush_interval=0.2,
                      api_keys=[{"key": KEY_A, "name": "a"}, {"key": KEY_B, "name": "b"}],
                      budgets=[{"name": "gpu month", "period": "month", "limit": 1000, "unit": "gpu_hours"}])


def start(tmp) -> ManagerProcess:
    m = ManagerProcess(tmp, doc())
    m.http.headers["Authorization"] = f"Bearer {ADMIN}"
    return m


def ask(mgr: ManagerProcess, key: str, words: int) -> dict:
    r = httpx.post(mgr.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                   json={"model": "chat", "messages": [{"role": "user", "content": " ".join(["w"] * words)}],
                         "max_tokens": 3})
    assert r.status_code == 200, r.text
    return r.json()["usage"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One load of chat serving a and b, then stopped: (manager, tokens per key, costs)."""
    mgr = start(tmp_path_factory.mktemp("costs"))
    try:
        tokens = {"cfg:a": ask(mgr, KEY_A, 5)["total_tokens"],
                  "cfg:b": sum(ask(mgr, KEY_B, 20)["total_tokens"] for _ in range(3))}
        assert mgr.http.post("/api/models/chat/stop", json={}).status_code in (200, 202)
        mgr.wait_state("chat", "stopped")

        def closed() -> dict | None:
            costs = mgr.http.get("/api/usage/costs", params={"days": 1}).json()
            ivs = costs["intervals"]
            return costs if ivs and ivs[0]["closed_by"] == "stop" else None

        costs = wait_until(closed, 10)
        assert costs, "the stop event never reached the store"
        yield mgr, tokens, costs
    finally:
        mgr.stop()


def test_runtime_cost_is_the_loaded_time_at_the_hourly_price(served):
    _, _, costs = served
    (chat,) = costs["by_model"]
    (interval,) = costs["intervals"]
    assert (interval["model"], interval["profile"], interval["price_per_hour"]) == ("chat", "gpu", PRICE_PER_HOUR)
    loaded = interval["end"] - interval["start"]
    assert 0 < loaded < 60 and chat["loaded_seconds"] == pytest.approx(loaded)
    assert chat["runtime_cost"] == pytest.approx(loaded * PRICE_PER_HOUR / 3600)
    assert chat["requests"] == 4 and chat["token_cost"] > 0  # token cost is shown apart


def test_runtime_gpu_time_and_energy_go_to_keys_by_token_share(served):
    _, tokens, costs = served
    (chat,) = costs["by_model"]
    keys = {k["key_id"]: k for k in costs["by_key"]}
    assert set(keys) == {"cfg:a", "cfg:b"}  # every second served tokens: nothing unattributed
    share_a = tokens["cfg:a"] / (tokens["cfg:a"] + tokens["cfg:b"])
    for col in ("runtime_cost", "gpu_seconds", "energy_wh"):
        assert keys["cfg:a"][col] == pytest.approx(chat[col] * share_a)
        assert keys["cfg:a"][col] + keys["cfg:b"][col] == pytest.approx(chat[col])


def test_gpu_seconds_and_energy_follow_the_simulated_power(served):
    _, _, costs = served
    (chat,) = costs["by_model"]
    # chat alone held gpu0 for the whole interval; it drew 50 W while loading and 112.5 W once ready
    assert chat["gpu_seconds"] == pytest.approx(chat["loaded_seconds"])
    assert IDLE_W * chat["loaded_seconds"] / 3600 <= chat["energy_wh"] + 1e-9
    assert chat["energy_wh"] <= LOADED_W * chat["loaded_seconds"] / 3600 + 1e-9
    gpu0 = next(d for d in costs["devices"] if d["device"] == "gpu0")
    assert gpu0["device_type"] == "GPU" and gpu0["energy_wh"] >= chat["energy_wh"]


def test_gpu_hour_budget_counts_the_measured_time(served):
    mgr, _, costs = served
    (chat,) = costs["by_model"]

    expected = chat["gpu_seconds"] / 3600

    def measured() -> dict | None:  # re-measured after each device sample; the one after the stop settles it
        (budget,) = mgr.http.get("/api/budgets").json()["budgets"]
        return budget if budget["used"] == pytest.approx(expected, rel=0.05) else None

    budget = wait_until(measured, 10)
    assert budget, f"GPU-hours used {mgr.http.get('/api/budgets').json()}, measured {expected}"
    assert budget["unit"] == "gpu_hours" and budget["limit"] == 1000


def test_reprice_under_a_dated_book_beside_what_was_billed(served):
    mgr, _, _ = served
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    book = [{"input": 2.0, "output": 4.0, "per": 1000}, {"effective_from": tomorrow, "input": 9, "output": 9}]
    r = mgr.http.post("/api/usage/reprice", json={"pricing": {"chat": book}, "days": 1})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["repriced_cost"] == pytest.approx(2 * out["current_cost"])  # today's block doubles both prices
    assert {row["key_id"] for row in out["by_key"]} == {"cfg:a", "cfg:b"} and len(out["by_day"]) >= 1
    bad = mgr.http.post("/api/usage/reprice", json={"pricing": {"chat": [book[1], book[0]]}})
    assert bad.status_code == 400 and "pricing.chat[1].effective_from" in bad.json()["error"]["message"]


def test_a_killed_manager_is_not_billed_past_its_last_sign_of_life(tmp_path):
    mgr = start(tmp_path)
    try:
        ask(mgr, KEY_A, 5)
        mgr.wait_state("chat", "ready")
        assert wait_until(lambda: mgr.http.get("/api/usage/costs", params={"days": 1}).json()["intervals"], 10)
        mgr.proc.send_signal(signal.SIGKILL)  # no stop event is ever written
        mgr.proc.wait(10)
        killed_at = time.time()
    finally:
        mgr.stop()
    again = start(tmp_path)
    try:
        (interval,) = again.http.get("/api/usage/costs", params={"days": 1}).json()["intervals"]
        assert interval["closed_by"] == "crash" and interval["end"] <= killed_at
    finally:
        again.stop()


def test_costs_need_the_admin_key_and_check_their_arguments(served):
    mgr, _, _ = served
    assert httpx.get(mgr.url + "/api/usage/costs").status_code == 401
    assert httpx.get(mgr.url + "/api/usage/costs", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 401
    for name, value in (("since", "yesterday"), ("since", "nan"), ("until", "inf"), ("days", "nan")):
        bad = mgr.http.get("/api/usage/costs", params={name: value})
        assert bad.status_code == 400 and name in bad.json()["error"]["message"]
    rebound = mgr.http.get("/api/usage/costs", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 403
    window = mgr.http.get("/api/usage/costs", params={"since": 0, "until": 1}).json()
    assert window["by_model"] == [] and window["intervals"] == []


def test_a_price_book_set_over_http_bills_new_rows_and_keeps_old_ones(served):
    mgr, _, _ = served
    before = mgr.http.get("/api/usage/requests", params={"days": 1}).json()["requests"]
    book = [{"input": 0, "output": 0, "per": 1000}, {"effective_from": "2020-01-01", "input": 10, "output": 10,
                                                     "per": 1000}]
    r = mgr.http.put("/api/pricing/chat", json={"book": book})
    assert r.status_code == 200 and r.json()["pricing"]["effective_from"] == "2020-01-01T00:00:00Z"
    assert len(r.json()["pricing"]["book"]) == 2
    usage = ask(mgr, KEY_A, 5)
    rows = wait_until(lambda: (lambda rs: rs if len(rs) > len(before) else None)(
        mgr.http.get("/api/usage/requests", params={"days": 1}).json()["requests"]), 10)
    assert rows and rows[-1]["cost"] == pytest.approx(usage["total_tokens"] * 10 / 1000)
    assert [x["cost"] for x in rows[:len(before)]] == [x["cost"] for x in before]  # history is not rewritten
    bad = mgr.http.put("/api/pricing/chat", json={"book": [book[1], book[0]]})
    assert bad.status_code == 400 and "pricing.chat[1].effective_from" in bad.json()["error"]["message"]
