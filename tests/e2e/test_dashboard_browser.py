"""End to end: the Panel dashboard at /dashboard of a real ``llm-manager serve``, driven by headless Chromium.

The server runs the bundled demo config (simulated GPUs, fake backends) with its model ports moved to free
ones, so this test can run beside others. It starts models with their ▶ links and through the API, checks what
a person sees in each tab (states as they change, tables readable, money on the cost axes, the logs' model
named), and saves screenshots under ``tests/e2e/output/`` for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import ManagerProcess, chromium_browser, free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "llm_manager" / "demo" / "demo.json"
OUTPUT = Path(__file__).resolve().parent / "output"
VIEWPORT = {"width": 1440, "height": 900}
# what a person's action may take to show on a loaded machine (2 cores, other test runs beside this one): a tab
# opened for the first time builds its views in the browser, several seconds under load. A wait, not a sleep.
SLOW = 45_000

# Records, from inside the page, every state a model's row shows: a MutationObserver on every shadow root
# sees each patch of the table, however briefly a state lasts (a poll from the test could miss it).
RECORD_STATES = """(model) => {
  window.__states = [];
  const roots = [];
  const walk = (node) => { roots.push(node); node.querySelectorAll('*').forEach(el => el.shadowRoot && walk(el.shadowRoot)); };
  walk(document);
  const record = () => {
    for (const root of roots) for (const row of root.querySelectorAll('.tabulator-row')) {
      const cell = row.querySelector('[tabulator-field="state"]');
      // the models table's rows (they have the action cell), not the cluster's nor the events'
      if (!cell || !row.querySelector('[tabulator-field="action"]') || !row.innerText.includes(model)) continue;
      const state = cell.innerText.trim();
      if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
    }
  };
  roots.forEach(root => new MutationObserver(record).observe(root, {subtree: true, childList: true, characterData: true}));
  record();
}"""
TEXT_BOX = """(el) => { const r = document.createRange(); r.selectNodeContents(el); const b = r.getBoundingClientRect();
                      return [b.left, b.right]; }"""
# the cost charts' axis formatter, as the page has it, applied to ticks a small local bill has
FORMAT_TICKS = """(ticks) => {
  for (const doc of Bokeh.documents) for (const m of doc.all_models)
    if (m.constructor.__name__ === 'CustomJSTickFormatter') return m.doFormat(ticks, {});
  return null;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    doc = json.loads(DEMO.read_text())
    for name, block in doc.items():
        if name != "program":
            block["port"] = free_port()
    proc = ManagerProcess(tmp_path_factory.mktemp("dashboard-e2e"), doc, dashboard=True)
    try:
        yield proc
    finally:
        proc.stop()  # SIGTERM, wait (the manager stops its models), SIGKILL only if it hangs


@pytest.fixture(scope="module")
def page(server: ManagerProcess) -> Iterator[object]:
    with chromium_browser() as browser:
        pg = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.errors = errors
        pg.set_default_timeout(SLOW)  # clicks too: one on a tab waits for the page to take it
        yield pg


def _tab(page: object, title: str) -> object:
    return page.locator(".bk-tab", has_text=title).first


def _live(page: object, title: str) -> None:
    """A live tab: they sit under "Operations", after the analysis tabs."""
    _tab(page, "Operations").click()
    _tab(page, title).click()


def _row(page: object, model: str) -> object:
    """The model's row of the models table (the analysis tables name models too)."""
    return page.locator(".tabulator-row", has=page.locator('[tabulator-field="action"]'), has_text=model).first


def _shot(page: object, name: str) -> None:
    page.screenshot(path=str(OUTPUT / name), full_page=True)


def _check_models_table(page: object) -> None:
    """Every column named, no sort arrows, and a ready model offers ■ stop, never ▶ start."""
    table = page.locator(".tabulator", has=_row(page, "demo-embedding")).first
    cols = table.locator(".tabulator-col").evaluate_all(
        "els => els.filter(e => e.offsetWidth > 0).map(e => [e.getAttribute('tabulator-field'), e.innerText.trim()])")
    assert all(title for field, title in cols if field), cols  # (no field: the select-all box)
    assert "action" in dict(cols) and len(cols) > 10, cols
    sortable = table.locator(".tabulator-col.tabulator-sortable").evaluate_all(
        "els => els.filter(e => e.offsetWidth > 0).map(e => e.getAttribute('tabulator-field') || e.className)")
    assert sortable == [], sortable  # (the hidden index columns keep theirs: nobody sees them)


@pytest.mark.timeout(600)  # every live tab, models started: minutes on a loaded machine
def test_start_a_model_from_the_dashboard(server: ManagerProcess, page: object) -> None:
    from playwright.sync_api import expect

    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server.url}/dashboard", wait_until="networkidle")
    _live(page, "Models")  # the page opens on the analysis; the live tabs follow it
    row = _row(page, "demo-embedding")
    expect(row).to_contain_text("stopped", timeout=SLOW)
    expect(page.get_by_text("4 models:")).to_be_visible()
    _check_models_table(page)
    # no demo model scales out: the instances table is there, empty, and says why
    expect(page.locator(".instances-table")).to_contain_text("No model runs several instances")
    _shot(page, "dashboard-first-load.png")

    row.locator('[title="start this model"]').click()
    expect(row).to_contain_text("ready", timeout=SLOW)
    assert server.models()["demo-embedding"]["state"] == "ready"
    expect(row).to_contain_text("RTX4060")
    expect(row.locator('[title="stop this model"]')).to_be_visible()
    expect(row.locator('[title="start this model"]')).to_have_count(0)
    expect(page.get_by_text("demo-embedding** ready").or_(page.get_by_text("demo-embedding ready"))).to_be_visible()

    # a second model, caught while it loads (demo-chat takes 1.5 s): spinner and progress under the table
    chat = _row(page, "demo-chat")
    chat.locator('[title="start this model"]').click()
    expect(page.get_by_text("demo-chat loading (")).to_be_visible(timeout=SLOW)
    _shot(page, "dashboard-starting.png")
    expect(chat).to_contain_text("ready", timeout=SLOW)
    expect(page.get_by_text("demo-chat loading (")).to_have_count(0)  # no stale loading line under a ready model

    # a start through the API shows "starting" too, although the reranker loads in a fraction of a second
    page.evaluate(RECORD_STATES, "demo-reranker")
    r = httpx.post(f"{server.url}/api/models/demo-reranker/start", timeout=30, trust_env=False)
    assert r.status_code in (200, 202), r.text  # 202: started, not waited for
    expect(_row(page, "demo-reranker")).to_contain_text("ready", timeout=SLOW)
    assert page.evaluate("window.__states") == ["stopped", "starting", "ready"]
    expect(page.get_by_text("3 ready")).to_be_visible()
    _check_models_table(page)
    _shot(page, "dashboard-ready.png")

    # a few requests, so the throughput and cost tabs have something to show
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        for i in range(5):
            r = http.post("/v1/embeddings", json={"model": "embed", "input": [f"hello {i}", "world"]})
            assert r.status_code == 200, r.text
        r = http.post("/v1/chat/completions", json={"model": "chat", "max_tokens": 8, "stream": True,
                                                     "messages": [{"role": "user", "content": "Hello!"}]})
        assert r.status_code == 200, r.text

    _live(page, "Devices")  # the RTX 4060 holds two models: both readable, nothing cut off
    held = page.locator('.tabulator-row .tabulator-cell[tabulator-field="held by"]', has_text="demo-reranker")
    expect(held).to_contain_text("demo-embedding 1,500 MB (ready)", timeout=SLOW)
    expect(held).to_contain_text("demo-reranker 800 MB (ready)")
    cells = page.locator('.tabulator-row .tabulator-cell[tabulator-field="held by"]')
    for i in range(cells.count()):
        assert cells.nth(i).evaluate("el => el.scrollWidth <= el.clientWidth + 1"), cells.nth(i).inner_text()
    _shot(page, "dashboard-devices.png")

    _live(page, "Cluster")  # the node registry (the store is SQLite: this node alone), its models and devices
    node = page.locator(".cluster-nodes .tabulator-row").first
    expect(node).to_contain_text("(this one)", timeout=SLOW)
    expect(node).to_contain_text("up")
    expect(page.locator(".cluster-models .tabulator-row", has_text="demo-embedding")).to_contain_text("ready")
    expect(page.locator(".cluster-devices .tabulator-row", has_text="RTX 4060")).to_contain_text("yes")
    _shot(page, "dashboard-cluster.png")

    _live(page, "Live throughput")  # each number under its own header
    ttft = page.locator('.tabulator-row .tabulator-cell[tabulator-field="TTFT p95 ms"]', has_text=re.compile(r"\d"))
    expect(ttft.first).to_be_visible(timeout=SLOW)
    header = page.locator('.tabulator-col[tabulator-field="TTFT p95 ms"] .tabulator-col-title').first
    # the table is re-rendered on every refresh tick: measure a laid-out cell (a detached one measures [0, 0])
    value_box = wait_until(lambda: (box := ttft.first.evaluate(TEXT_BOX))[1] > 0 and box, timeout=SLOW / 1000)
    header_box = header.evaluate(TEXT_BOX)
    assert value_box and abs(value_box[1] - header_box[1]) < 12, (value_box, header_box)
    _shot(page, "dashboard-throughput.png")

    _tab(page, "Usage & cost").click()
    page.locator(".filter-refresh button").first.click()  # the analysis tick is every 30 s: reload now
    expect(page.get_by_text("6 requests,", exact=False)).to_be_visible(timeout=SLOW)
    expect(page.locator(".kpis-usage .kpi", has_text="Cost")).to_contain_text("$", timeout=SLOW)
    # the tables of a page opened before any traffic name the models (an empty first answer once typed the
    # model column as a number, and every later row read "NaN")
    chat_cost = page.locator(".table-by_model .tabulator-row", has_text="demo-chat")
    expect(chat_cost).to_contain_text("$", timeout=SLOW)
    expect(page.locator(".table-by_model .tabulator-row", has_text="NaN")).to_have_count(0)
    page.wait_for_function(f"() => ({FORMAT_TICKS})([0]) !== null")
    assert page.evaluate(FORMAT_TICKS, [0, 0.0025, 0.005, 0.0075]) == ["$0.0000", "$0.0025", "$0.0050", "$0.0075"]
    assert page.evaluate(FORMAT_TICKS, [0, 500, 1000, 1500]) == ["$0", "$500", "$1,000", "$1,500"]
    assert page.evaluate(FORMAT_TICKS, [0, 0.5, 1]) == ["$0.00", "$0.50", "$1.00"]
    _shot(page, "dashboard-cost.png")

    _live(page, "Batches")  # no batches yet: the tab renders its summary line and table
    expect(page.get_by_text("0 batches, 0 in progress", exact=False)).to_be_visible(timeout=SLOW)

    _live(page, "Logs")  # the selector names the model whose lines are shown
    select = page.locator("select", has=page.locator("option", has_text="demo-embedding")).first  # the logs' own
    expect(select).not_to_have_value("", timeout=SLOW)
    shown = select.input_value()
    expect(page.get_by_text(f"model={shown}", exact=False).first).to_be_visible(timeout=SLOW)
    _shot(page, "dashboard-logs.png")
    select.select_option("demo-embedding")
    expect(page.get_by_text("model=demo-embedding", exact=False).first).to_be_visible(timeout=SLOW)
    assert page.errors == [], page.errors

    server.http.post("/api/models/demo-reranker/stop")  # the standalone test starts it from stopped
    server.wait_state("demo-reranker", "stopped")


@pytest.mark.timeout(300)
def test_standalone_panel_serve_reaches_the_manager_over_http(server: ManagerProcess, page: object,
                                                             tmp_path: Path) -> None:
    """``panel serve llm_manager/panel_app/app.py`` in its own process drives the manager through the Client."""
    from playwright.sync_api import expect

    server.http.post("/api/models/demo-reranker/stop")  # whatever the test before left running
    server.wait_state("demo-reranker", "stopped")
    port = free_port()
    log = (tmp_path / "panel.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(ROOT / "llm_manager" / "panel_app" / "app.py"), "--port",
         str(port), "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"],
        cwd=ROOT, env={**os.environ, "LLM_MANAGER_URL": server.url}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "panel.log").read_text()
            try:
                # the server, not a page: GET /app builds a whole session (seconds on a loaded machine)
                if httpx.get(f"http://127.0.0.1:{port}/liveness", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "panel.log").read_text()
            time.sleep(0.3)
        page.goto(f"http://127.0.0.1:{port}/app", wait_until="networkidle")
        _live(page, "Models")
        row = _row(page, "demo-reranker")
        expect(row).to_contain_text("stopped", timeout=SLOW)
        page.evaluate(RECORD_STATES, "demo-reranker")
        row.locator('[title="start this model"]').click()
        expect(row).to_contain_text("ready", timeout=SLOW)
        assert server.models()["demo-reranker"]["state"] == "ready"
        # the short "starting" came through the manager's /api/ws, not a poll
        states = page.evaluate("window.__states")
        assert states == ["stopped", "starting", "ready"], states
        page.screenshot(path=str(OUTPUT / "dashboard-standalone.png"), full_page=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_dashboard_does_not_block_the_api(server: ManagerProcess, page: object) -> None:
    """With the dashboard open and refreshing, the proxy still answers promptly."""
    with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as http:
        for _ in range(20):
            r = http.get("/api/health")
            assert r.status_code == 200
            assert r.elapsed.total_seconds() < 1.0
