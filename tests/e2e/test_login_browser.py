"""With ``program.admin_key`` set, the admin opens the dashboard in a real browser through Panel's login page,
and the WebUI's event stream authenticates with the key it keeps (no key in the websocket URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ManagerProcess, chromium_browser, config_doc, fake_model

pytestmark = pytest.mark.e2e

ADMIN = "sk-admin-browser-login"
OUTPUT = Path(__file__).resolve().parent / "output"
WEBUI_BUILT = (Path(__file__).resolve().parents[2] / "webui" / "dist" / "index.html").is_file()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    doc = config_doc({"chat": fake_model("Chat")}, admin_key=ADMIN)
    proc = ManagerProcess(tmp_path_factory.mktemp("login-e2e"), doc, dashboard=True)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture()
def browser() -> Iterator[object]:
    with chromium_browser() as b:
        yield b


def test_admin_logs_in_to_the_dashboard(server, browser):
    OUTPUT.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server.url}/dashboard")
    page.wait_for_selector("input[name=password]", timeout=30_000)
    page.screenshot(path=str(OUTPUT / "login-page.png"))
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url("**/dashboard*", timeout=30_000)
    page.get_by_text("chat").first.wait_for(timeout=60_000)  # the model table came over the dashboard's websocket
    page.screenshot(path=str(OUTPUT / "login-dashboard.png"))


@pytest.mark.skipif(not WEBUI_BUILT, reason="webui/dist is not built (cd webui && npm ci && npm run build)")
def test_webui_event_stream_uses_the_saved_key_without_url_token(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(server.url + "/")
    page.evaluate(f"localStorage.setItem('llm-manager.adminKey', {ADMIN!r})")
    page.reload()
    page.get_by_text("chat").first.wait_for(timeout=30_000)
    page.wait_for_function("() => document.body.innerText.toLowerCase().includes('live')", timeout=30_000)
    assert sockets and all("/api/ws" in u and "token" not in u and ADMIN not in u for u in sockets), sockets
    assert ADMIN not in server.log_path.read_text()
    page.screenshot(path=str(OUTPUT / "login-webui.png"))
