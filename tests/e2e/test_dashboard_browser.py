"""End to end: the Panel dashboard at /dashboard of a real ``llm-manager serve``, driven by headless Chromium.

The server runs the bundled demo config (simulated GPUs, fake backends) with its model ports moved to free
ones, so this test can run beside others. It starts demo-embedding with its ▶ button, waits for the table to
say ready, sends a few requests, and saves screenshots under ``tests/e2e/output/`` for a person to look at.
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
from helpers import ManagerProcess, chromium_path, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "llm_manager" / "demo" / "demo.json"
OUTPUT = Path(__file__).resolve().parent / "output"
VIEWPORT = {"width": 1440, "height": 900}




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
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (set LLM_MANAGER_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable,
                                     args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        try:
            pg = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.errors = errors
            yield pg
        finally:
            browser.close()


def _tab(page: object, title: str) -> object:
    return page.locator(".bk-tab", has_text=title).first


def _row(page: object, model: str) -> object:
    return page.locator(".tabulator-row", has_text=model).first


def test_start_a_model_from_the_dashboard(server: ManagerProcess, page: object) -> None:
    from playwright.sync_api import expect

    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server.url}/dashboard", wait_until="networkidle")
    row = _row(page, "demo-embedding")
    expect(row).to_contain_text("stopped", timeout=30_000)
    expect(page.get_by_text("4 models:")).to_be_visible()

    row.locator('[title="start this model"]').click()
    expect(row).to_contain_text("ready", timeout=30_000)
    assert server.models()["demo-embedding"]["state"] == "ready"
    expect(row).to_contain_text("RTX4060")
    expect(page.get_by_text("demo-embedding** ready").or_(page.get_by_text("demo-embedding ready"))).to_be_visible()

    # a few requests, so the throughput and cost tabs have something to show
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        for i in range(5):
            r = http.post("/v1/embeddings", json={"model": "embed", "input": [f"hello {i}", "world"]})
            assert r.status_code == 200, r.text
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

    # a second model, caught while it loads (demo-chat takes 1.5 s): spinner and progress under the table
    chat = _row(page, "demo-chat")
    chat.locator('[title="start this model"]').click()
    expect(chat).to_contain_text(re.compile("starting|ready"), timeout=10_000)
    page.wait_for_timeout(300)  # let the rest of that refresh (header, progress row) arrive
    page.screenshot(path=str(OUTPUT / "dashboard-starting.png"), full_page=True)
    expect(chat).to_contain_text("ready", timeout=30_000)
    expect(page.get_by_text("2 ready")).to_be_visible()

    _tab(page, "Devices").click()
    expect(page.get_by_text("demo-embedding 1,500 MB (ready)")).to_be_visible(timeout=10_000)
    page.wait_for_timeout(2500)
    page.screenshot(path=str(OUTPUT / "dashboard-devices.png"), full_page=True)

    _tab(page, "Throughput & latency").click()
    expect(_row(page, "demo-embedding")).to_be_visible(timeout=10_000)
    page.screenshot(path=str(OUTPUT / "dashboard-throughput.png"), full_page=True)

    _tab(page, "Cost").click()
    expect(page.get_by_text("5 requests,", exact=False)).to_be_visible(timeout=15_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(OUTPUT / "dashboard-cost.png"), full_page=True)

    _tab(page, "Logs").click()
    page.get_by_role("combobox").first.select_option("demo-embedding")
    expect(page.get_by_text("fake-backend listening on", exact=False)).to_be_visible(timeout=10_000)
    page.screenshot(path=str(OUTPUT / "dashboard-logs.png"), full_page=True)
    assert page.errors == [], page.errors


def test_standalone_panel_serve_reaches_the_manager_over_http(server: ManagerProcess, page: object,
                                                             tmp_path: Path) -> None:
    """``panel serve llm_manager/panel_app/app.py`` in its own process drives the manager through the Client."""
    from playwright.sync_api import expect

    port = free_port()
    log = (tmp_path / "panel.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(ROOT / "llm_manager" / "panel_app" / "app.py"), "--port",
         str(port), "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"],
        cwd=ROOT, env={**os.environ, "LLM_MANAGER_URL": server.url}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "panel.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/app", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "panel.log").read_text()
            time.sleep(0.3)
        page.goto(f"http://127.0.0.1:{port}/app", wait_until="networkidle")
        row = _row(page, "demo-reranker")
        expect(row).to_contain_text("stopped", timeout=30_000)
        row.locator('[title="start this model"]').click()
        expect(row).to_contain_text("ready", timeout=30_000)
        assert server.models()["demo-reranker"]["state"] == "ready"
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
