"""Usage reports from a real manager's store: GET /api/report and ``llm-manager report``, checked against sums by hand.

Last month's history is written through the store API into the manager's own database (as rows a past month left);
this month's rows come from real requests through the gateway with the config's keys.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timezone
from html.parser import HTMLParser

import httpx
import pandas as pd
import pytest
from helpers import ROOT, ManagerProcess, config_doc, fake_model, wait_until

from llm_manager.accounting.record import UsageRecord
from llm_manager.accounting.store import UsageStore
from llm_manager.cli import main

ADMIN = "sk-admin-reports"
KEYS = {"search": "sk-search-1", "support": "sk-support-1"}
PRICES = {"chat": (1.0, 2.0), "embed": (0.5, 0.0)}  # input, output per 1,000 tokens
EVIL = "http://evil.example"


def ts(day: str, hour: int = 12, minute: int = 0) -> float:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=timezone.utc).timestamp()


# ts, model, key, endpoint, status, error, cached, prompt, completion, cost (as billed then)
HISTORY = [
    (ts("2025-10-31", 23, 59), "chat", "cfg:search", "/v1/chat/completions", 200, None, False, 9, 9, 9.0),  # before
    (ts("2025-11-03", 9), "chat", "cfg:search", "/v1/chat/completions", 200, None, False, 1000, 200, 1.4),
    (ts("2025-11-03", 10), "chat", "cfg:support", "/v1/chat/completions", 500, "upstream error", False, 50, 0, 0.05),
    (ts("2025-11-04", 9), "embed", "cfg:search", "/v1/embeddings", 200, None, False, 400, 0, 0.2),
    (ts("2025-11-04", 11), "chat", "cfg:search", "/v1/chat/completions", 200, None, True, 1000, 200, 0.0),
    (ts("2025-11-30", 23), "chat", None, "/v1/chat/completions", 200, None, False, 10, 5, 0.02),
    (ts("2025-12-01", 0), "chat", "cfg:search", "/v1/chat/completions", 200, None, False, 7, 7, 7.0),  # after
]
# by model, key, day over 2025-11-01 .. 2025-11-30, by hand:
# model, key, day, requests, errors, cached_requests, prompt, completion, total, token_cost
EXPECTED = [
    ("chat", "cfg:search", "2025-11-03", 1, 0, 0, 1000, 200, 1200, 1.4),
    ("chat", "cfg:search", "2025-11-04", 1, 0, 1, 1000, 200, 1200, 0.0),
    ("chat", "cfg:support", "2025-11-03", 1, 1, 0, 50, 0, 50, 0.05),
    ("chat", None, "2025-11-30", 1, 0, 0, 10, 5, 15, 0.02),
    ("embed", "cfg:search", "2025-11-04", 1, 0, 0, 400, 0, 400, 0.2),
]
COLUMNS = ["model", "key", "day", "requests", "errors", "cached_requests", "prompt_tokens", "completion_tokens",
           "total_tokens", "token_cost"]


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    doc = config_doc({"chat": fake_model("Chat", pricing={"input": 1.0, "output": 2.0, "per": 1000}),
                      "embed": fake_model("Embedding", pricing={"input": 0.5, "output": 0, "per": 1000})},
                     admin_key=ADMIN, flush_interval=0.2,
                     api_keys=[{"key": v, "name": k} for k, v in KEYS.items()])
    m = ManagerProcess(tmp_path_factory.mktemp("reports"), doc)
    m.http.headers["Authorization"] = f"Bearer {ADMIN}"
    store = UsageStore(f"sqlite:///{m.data_dir / 'usage.db'}", m.data_dir)  # last month, written beside the manager
    for t, model, key, endpoint, status, error, cached, p, c, cost in HISTORY:
        store.record(UsageRecord(model=model, endpoint=endpoint, status=status, key_id=key, prompt_tokens=p,
                                 completion_tokens=c, cost=cost, error=error, cached=cached, ts=t))
    store.close()
    m.served = serve_this_month(m)  # type: ignore[attr-defined]
    yield m
    m.stop()


def serve_this_month(m: ManagerProcess) -> dict[str, dict[str, float]]:
    """Real requests through the gateway; returns the hand sums per key from the answers' usage and the prices."""
    sums: dict[str, dict[str, float]] = {}
    calls = [("search", "chat"), ("search", "chat"), ("support", "chat"), ("support", "embed")]
    for name, model in calls:
        headers = {"Authorization": f"Bearer {KEYS[name]}"}
        if model == "chat":
            r = httpx.post(m.url + "/v1/chat/completions", headers=headers, timeout=30,
                           json={"model": "chat", "messages": [{"role": "user", "content": "one two three"}],
                                 "max_tokens": 4})
        else:
            r = httpx.post(m.url + "/v1/embeddings", headers=headers, json={"model": "embed", "input": ["a b c d"]},
                           timeout=30)
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        p, c = usage["prompt_tokens"], usage.get("completion_tokens", 0)
        s = sums.setdefault(f"cfg:{name}", {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})
        s["requests"] += 1
        s["prompt_tokens"] += p
        s["completion_tokens"] += c
        s["cost"] += (p * PRICES[model][0] + c * PRICES[model][1]) / 1000
    return sums


class Tables(HTMLParser):
    """The text of every <table> cell (pandas.read_html would need lxml)."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def frame(self, i: int = 0) -> pd.DataFrame:
        head, *rows = self.tables[i]
        return pd.DataFrame(rows, columns=head)


def report(mgr: ManagerProcess, **params: str) -> httpx.Response:
    return mgr.http.get("/api/report", params=params)


def check_november(table: pd.DataFrame) -> None:
    table = table.astype({"key": object}).where(table.notna(), None)
    assert [c for c in table.columns if c in COLUMNS] == COLUMNS
    assert [tuple(r) for r in table[COLUMNS].itertuples(index=False)] == pytest.approx(EXPECTED)


# ---------------------------------------------------------------- HTTP


def test_csv_over_http_matches_the_hand_sums(mgr):
    r = report(mgr, **{"from": "2025-11-01", "to": "2025-11-30", "by": "model,key,day", "format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert 'filename="llm-usage-2025-11-01_2025-11-30.csv"' in r.headers["Content-Disposition"]
    check_november(pd.read_csv(io.StringIO(r.text), keep_default_na=False).replace({"key": {"": None}}))


def test_json_report_of_this_month_is_the_real_requests(mgr):
    served = mgr.served
    assert wait_until(lambda: report(mgr, by="key").json()["totals"]["requests"] == 4), "requests not flushed"
    doc = report(mgr, by="key").json()  # default: the 1st of this month to today, as JSON
    today = datetime.now(timezone.utc).date()
    assert (doc["from"], doc["to"], doc["by"]) == (today.replace(day=1).isoformat(), today.isoformat(), ["key"])
    rows = {r["key"]: r for r in doc["rows"]}
    assert set(rows) == set(served)
    for key, want in served.items():
        got = rows[key]
        assert (got["requests"], got["prompt_tokens"], got["completion_tokens"]) == (
            want["requests"], want["prompt_tokens"], want["completion_tokens"])
        assert got["token_cost"] == pytest.approx(want["cost"])
        assert got["key_name"] == key.removeprefix("cfg:")
    assert doc["totals"]["token_cost"] == pytest.approx(sum(s["cost"] for s in served.values()))
    assert {"runtime_cost", "gpu_seconds", "energy_wh"} <= set(doc["rows"][0])  # accounting.energy's columns
    assert not [n for n in doc["notes"] if "left out" in n], doc["notes"]


def test_html_report_holds_the_plots_and_the_tables_and_needs_no_network(mgr):
    r = report(mgr, **{"from": "2025-11-01", "to": "2025-11-30", "by": "model,key", "format": "html"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    page = r.text
    for title in ("Token cost per day", "Requests per day", "Token cost by model", "Token cost by API key"):
        assert f'"text":"{title}"' in page  # each Bokeh plot's title, in the embedded document
    assert '"name":"GridPlot"' in page and "Bokeh.embed.embed_items" in page
    assert "<script src=" not in page and "cdn.bokeh.org" not in page  # BokehJS is inlined: it opens offline
    table = Tables(page).frame()
    assert list(table.columns[:4]) == ["Model", "API key", "Key name", "Requests"]
    assert table["Requests"].tolist() == ["2", "1", "1", "1", "5"]  # four groups and the totals row
    assert table.iloc[-1]["Model"] == "Total" and table.iloc[-1]["Token cost"] == "1.67 USD"
    assert "(no key)" in table["API key"].tolist() and "search" in table["Key name"].tolist()


@pytest.mark.parametrize(("params", "param", "text"), [
    ({"from": "2025-11-31"}, "from", "expected a date YYYY-MM-DD"),
    ({"from": "2025-11-05", "to": "2025-11-01"}, "to", "is before from"),
    ({"by": "model,user"}, "by", "unknown group 'user'"),
    ({"format": "xlsx"}, "format", "expected one of csv, parquet, html, json"),
])
def test_bad_arguments_get_a_clear_400(mgr, params, param, text):
    r = report(mgr, **params)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and text in err["message"]


def test_parquet_report_reads_back(mgr):
    r = report(mgr, **{"from": "2025-11-01", "to": "2025-11-30", "format": "parquet"})
    assert r.status_code == 200
    assert pd.read_parquet(io.BytesIO(r.content))["requests"].tolist() == [4, 1]


def test_reports_and_alerts_need_the_admin_key_and_an_allowed_host(mgr):
    for path in ("/api/report", "/api/alerts"):
        assert httpx.get(mgr.url + path).status_code == 401
        r = httpx.get(mgr.url + path, headers={"Authorization": f"Bearer {KEYS['search']}"})
        assert r.status_code == 401, r.text  # a user key is not an admin key
        r = mgr.http.get(path, headers={"Host": f"evil.example:{mgr.port}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"
        r = mgr.http.get(path, headers={"Origin": EVIL})  # a foreign page's read: answered, but not readable by it
        assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
        assert mgr.http.post(path, json={}, headers={"Origin": EVIL}).status_code == 403


# ---------------------------------------------------------------- CLI


def test_cli_csv_matches_the_hand_sums(mgr, tmp_path, capsys):
    out = tmp_path / "november.csv"
    rc = main(["report", "--data-dir", str(mgr.data_dir), "--from", "2025-11-01", "--to", "2025-11-30",
               "--by", "model,key,day", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().err
    check_november(pd.read_csv(out, keep_default_na=False).replace({"key": {"": None}}))


def test_cli_reads_a_database_url_alone_and_writes_html(mgr, tmp_path):
    """As a user runs it: the installed command, a database URL, no manager involved."""
    out = tmp_path / "month.html"
    r = subprocess.run([sys.executable, "-m", "llm_manager.cli", "report", "--database-url",
                        f"sqlite:///{mgr.data_dir / 'usage.db'}", "--from", "2025-11-01", "--to", "2025-11-30",
                        "--by", "week", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    table = Tables(out.read_text()).frame()
    assert table["Week of"].tolist() == ["2025-11-03", "2025-11-24", "Total"]
    assert table["Requests"].tolist() == ["4", "1", "5"]  # Mon 3 and Tue 4 Nov: four rows; Sun 30 Nov: the week of 24 Nov


@pytest.mark.parametrize(("argv", "text"), [
    (["--from", "2025-02-30"], "from: expected a date YYYY-MM-DD"),
    (["--by", "hour"], "by: unknown group 'hour'"),
    (["--out", "r.xlsx"], "format: expected one of"),
])
def test_cli_bad_arguments_fail_with_one_line(mgr, capsys, argv, text):
    assert main(["report", "--data-dir", str(mgr.data_dir), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and text in err and "Traceback" not in err


def test_cli_without_a_database_says_where_it_looked(tmp_path, capsys):
    assert main(["report", "--data-dir", str(tmp_path / "none")]) == 1
    assert f"no usage database at {tmp_path / 'none' / 'usage.db'}" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # a report creates nothing


def test_cli_json_to_stdout(mgr, capsys):
    assert main(["report", "--data-dir", str(mgr.data_dir), "--from", "2025-11-01", "--to", "2025-11-30",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["requests"]) for r in doc["rows"]] == [("chat", 4), ("embed", 1)]


def test_the_client_reads_reports_and_alerts(mgr):
    from llm_manager.client import Client

    client = Client(mgr.url, api_key=ADMIN)
    rep = client.report("2025-11-01", "2025-11-30", by="model")
    over_http = report(mgr, **{"from": "2025-11-01", "to": "2025-11-30", "by": "model", "format": "json"}).json()
    assert rep == over_http and rep["rows"], rep
    assert isinstance(client.alerts(5), list)
