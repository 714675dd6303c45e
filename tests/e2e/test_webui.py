"""End to end: the React WebUI (webui/dist) served by a real manager, driven by headless Chromium.

Starts ``python -m llm_manager.cli serve`` with the bundled demo config (simulated GPUs, fake backends),
opens ``/``, starts the Chat model with its button, waits for it to turn ready, sends chat requests with
httpx and waits for the live throughput counter to move. Screenshots at desktop and phone widths go to
``tests/e2e/output/`` for a person to look at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers import chromium_browser, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DIST_INDEX = ROOT / "webui" / "dist" / "index.html"
OUTPUT = Path(__file__).resolve().parent / "output"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}






@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not DIST_INDEX.is_file():
        pytest.skip(f"WebUI not built ({DIST_INDEX} missing): run `cd webui && npm ci && npm run build`")
    tmp = tmp_path_factory.mktemp("webui-e2e")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / "manager.log"
    log = log_path.open("w")
    env = {
        **os.environ,
        "LLM_MANAGER_DATA_DIR": str(tmp / "data"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    # cwd is an empty folder so no ./config.json is picked up: the bundled demo config is served.
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_manager.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 45
        while True:
            if proc.poll() is not None:
                pytest.fail(f"manager exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"manager not healthy in 45 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


def _chat_model(url: str) -> str:
    models = httpx.get(f"{url}/api/models-info", timeout=10, trust_env=False).json()["models"]
    chat = [m["name"] for m in models if m["mode"] == "Chat"]
    assert chat, f"no Chat model in {models}"
    return chat[0]


def _chat(url: str, model: str, i: int) -> dict:
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 16},
        timeout=60,
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _attr(page, selector: str, name: str) -> float:
    return float(page.get_attribute(selector, name) or 0)


def test_webui_start_model_and_watch_throughput(manager: str, browser) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    model = _chat_model(manager)
    errors: list[str] = []

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    try:
        page.goto(manager + "/", wait_until="domcontentloaded")

        # The overview lists the models and connects to the event stream.
        row = f'[data-testid="model-row-{model}"]'
        page.wait_for_selector(row, timeout=20_000)
        assert page.get_attribute(row, "data-state") == "stopped"
        page.wait_for_selector('[data-testid="connection"][data-status="open"]', timeout=20_000)
        page.wait_for_selector('[data-testid="device"]', timeout=20_000)
        assert page.locator('[data-testid="model-table"] tbody tr').count() >= 4

        # Start it with its button; it goes through "starting" (with a load bar) to "ready".
        page.click(f'[data-testid="start-{model}"]')
        page.wait_for_selector(f'{row}:is([data-state="starting"], [data-state="ready"])', timeout=20_000)
        if page.get_attribute(row, "data-state") == "starting":
            page.screenshot(path=str(OUTPUT / "overview-starting-desktop.png"))
        page.wait_for_selector(f'{row}[data-state="ready"]', timeout=60_000)
        page.wait_for_selector(f'[data-testid="stop-{model}"]', timeout=5_000)

        # A few chat requests: the throughput chart and its counter must move.
        counter = '[data-testid="throughput-counter"]'
        page.wait_for_function(
            "s => Number(document.querySelector(s)?.dataset.samples || 0) > 0", arg=counter, timeout=20_000
        )
        with ThreadPoolExecutor(max_workers=3) as pool:
            replies = list(pool.map(lambda i: _chat(manager, model, i), range(6)))
        assert all(r["choices"][0]["message"]["content"] for r in replies)
        page.wait_for_function(
            "s => Number(document.querySelector(s)?.dataset.peakTokensPerS || 0) > 0",
            arg=counter,
            timeout=20_000,
        )
        assert _attr(page, counter, "data-peak-requests-per-s") > 0
        page.wait_for_function(
            "s => Number(document.querySelector(s)?.dataset.requestsSeen || 0) >= 6", arg=counter, timeout=20_000
        )
        assert page.locator(".chart-box canvas").count() >= 1
        page.screenshot(path=str(OUTPUT / "overview-desktop.png"), full_page=True)

        # The other pages render with live data.
        page.click('nav >> text="Models"')
        page.wait_for_selector(row)
        page.click(f'{row} >> a.model-link')
        page.wait_for_selector('[data-testid="model-config"]', timeout=10_000)
        page.click('text="Check placement"')
        page.wait_for_selector('[data-testid="plan-result"]', timeout=10_000)
        page.screenshot(path=str(OUTPUT / "models-desktop.png"), full_page=True)

        page.click('nav >> text="Logs"')
        page.wait_for_selector('[data-testid="log-lines"] .logline', timeout=10_000)
        page.screenshot(path=str(OUTPUT / "logs-desktop.png"))

        page.click('nav >> text="Usage & cost"')
        page.wait_for_selector('[data-testid="usage-totals"], [data-testid="usage-disabled"]', timeout=10_000)
        page.wait_for_selector("text=chat/completions", timeout=10_000)  # the live requests table
        page.screenshot(path=str(OUTPUT / "usage-desktop.png"), full_page=True)

        # Phone width: the sidebar becomes a top bar with a menu.
        page.set_viewport_size(PHONE)
        page.goto(manager + "/", wait_until="domcontentloaded")
        page.wait_for_selector(f'{row}[data-state="ready"]', timeout=20_000)
        page.wait_for_selector('[data-testid="connection"][data-status="open"]', timeout=20_000)
        assert not page.is_visible('nav >> text="Models"')
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"page is {width}px wide at phone width"
        page.screenshot(path=str(OUTPUT / "overview-phone.png"), full_page=True)
        page.click('button[aria-label="menu"]')
        page.wait_for_selector('nav >> text="Models"', state="visible")
        page.screenshot(path=str(OUTPUT / "menu-phone.png"))
        page.click('nav >> text="Models"')
        page.wait_for_selector(row)
        page.screenshot(path=str(OUTPUT / "models-phone.png"), full_page=True)

        # Stop it again from the UI.
        page.click(f'[data-testid="stop-{model}"]')
        page.wait_for_selector(f'{row}[data-state="stopped"]', timeout=30_000)

        # API keys (last: the first key turns on key checks for /v1). The secret is shown once.
        page.set_viewport_size(DESKTOP)
        page.goto(manager + "/keys", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="key-table"], [data-testid="keys-disabled"], .empty', timeout=10_000)
        if not page.is_visible('[data-testid="keys-disabled"]'):
            page.fill("#key-name", "e2e-notebook")
            page.click('button:has-text("Create key")')
            secret = page.text_content('[data-testid="key-secret-value"]', timeout=10_000) or ""
            assert secret.startswith("sk-"), secret
            page.wait_for_selector('[data-testid="key-table"] >> text="e2e-notebook"', timeout=10_000)
        page.screenshot(path=str(OUTPUT / "keys-desktop.png"), full_page=True)
    finally:
        context.close()

    real_errors = [e for e in errors if "/api/usage/summary" not in e and "/api/keys" not in e and "404" not in e]
    assert not real_errors, "\n".join(real_errors)
