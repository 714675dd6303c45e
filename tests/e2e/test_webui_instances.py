"""End to end: the WebUI shows a scaled-out model's instances and remote upstream (issue 16), on a real manager,
driven by headless Chromium.

"chat" runs two local instances (``max_instances``/``min_instances`` 2, one per simulated GPU) and has a remote
upstream: a fake backend this test starts itself, so it can take it away and bring it back. "wide" keeps 3 of 4
instances and has two upstreams, one of them on a port nobody listens on (the crowded case must stay readable).
"plain" is one local process and must look as it always did. The page must mirror GET /api/models-info (chips under the model row,
the detail sub-table), name who served each live request, show the upstream cooling down with a countdown once it
is gone, and healthy again once it is back. Screenshots go to ``tests/e2e/output/``. Needs ``cd webui && npm run
build`` first.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ManagerProcess, chromium_browser, config_doc, fake_model, free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DIST_INDEX = ROOT / "webui" / "dist" / "index.html"
OUTPUT = Path(__file__).resolve().parent / "output"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
STRIP = '[data-testid="serving-chat"]'


class Upstream:
    """A fake backend the manager did not start: the remote upstream, stopped and started by the test."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}/v1"
        self._log = (tmp / "upstream.log").open("a")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llm_manager.testing.fake_backend", "--port", str(self.port), "--model", "chat",
             "--tokens-per-second", "20", "--quiet"],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        assert wait_until(self._up, 20), "the upstream fake backend did not come up"

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/models", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    u = Upstream(tmp_path_factory.mktemp("webui-upstream"))
    u.start()
    yield u
    u.close()


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[ManagerProcess]:
    if not DIST_INDEX.is_file():
        pytest.skip(f"WebUI not built ({DIST_INDEX} missing): run `cd webui && npm ci && npm run build`")
    chat = fake_model("Chat", args=["--tokens-per-second", "20"], max_instances=2, min_instances=2,
                      upstreams=[{"url": upstream.url, "api_key": "sk-remote-e2e"}], fallbacks=["plain"])
    chat["ports"] = [chat["port"], free_port()]
    del chat["gpu"]  # one profile per simulated GPU: the second instance lands on the other card
    for gpu in ("gpu0", "gpu1"):
        chat[gpu] = {"required_devices": [gpu], "memory_mb": {gpu: 1000}}
    wide = fake_model("Chat", max_instances=4, min_instances=3,
                      upstreams=[{"url": upstream.url}, {"url": f"http://127.0.0.1:{free_port()}/v1", "weight": 2}])
    wide["ports"] = [wide["port"], free_port(), free_port(), free_port()]
    doc = config_doc({"chat": chat, "wide": wide, "plain": fake_model("Chat")}, gpus={"gpu0": 8000, "gpu1": 8000},
                     flush_interval=0.05)
    m = ManagerProcess(tmp_path_factory.mktemp("webui-instances"), doc)
    yield m
    m.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as b:
        yield b


def chat_info(mgr: ManagerProcess, name: str = "chat") -> dict[str, Any]:
    return mgr.models()[name]


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(OUTPUT / name), full_page=True, animations="disabled")


def chips(page: Any, strip: str = STRIP) -> list[tuple[str, str, str]]:
    return page.eval_on_selector_all(
        f'{strip} [data-testid="serving-chip"]', "cs => cs.map(c => [c.dataset.kind, c.dataset.id, c.dataset.state])")


def expected_chips(info: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What the strip must draw for an entry of /api/models-info: instances not stopped, then every upstream."""
    out = [["instance", i["id"], i["state"]] for i in info["instances"] if i["state"] != "stopped"]
    for u in info["upstreams"]:
        out.append(["upstream", u["id"], "cooling" if u["cooling_s"] > 0 else "healthy" if u["healthy"] else "down"])
    return out


def upstream_chip(upstream: Upstream) -> str:
    return f'{STRIP} [data-kind="upstream"][data-id="{upstream.host}"]'


def chat(mgr: ManagerProcess, i: int) -> str:
    r = httpx.post(f"{mgr.url}/v1/chat/completions", timeout=60, trust_env=False,
                   json={"model": "chat", "max_tokens": 16, "messages": [{"role": "user", "content": f"hi {i}"}]})
    assert r.status_code == 200, r.text
    assert r.headers["X-LLM-Manager-Model"] == "chat"
    return r.headers["X-LLM-Manager-Instance"]


def fits(page: Any) -> None:
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport + 1, f"page is {width}px wide in a {viewport}px window"


def test_webui_shows_instances_upstreams_and_who_served(mgr: ManagerProcess, upstream: Upstream,
                                                         browser: Any) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    try:
        # min_instances 2: both instances start on their own, one per GPU.
        assert wait_until(lambda: [i["state"] for i in chat_info(mgr)["instances"]] == ["ready", "ready"], 60), \
            f"two ready instances expected: {chat_info(mgr)['instances']}"
        info = chat_info(mgr)
        assert [(i["id"].startswith("chat"), i["instance"]) for i in info["instances"]] == [(True, 0), (True, 1)]
        assert info["instances"][0]["id"] == "chat"
        assert sorted(d for i in info["instances"] for d in i["devices"]) == ["gpu0", "gpu1"]

        page.goto(mgr.url + "/models", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="connection"][data-status="open"]', timeout=20_000)
        page.wait_for_selector(STRIP, timeout=20_000)
        page.wait_for_function(
            "s => document.querySelectorAll(s).length === 2",
            arg=f'{STRIP} [data-kind="instance"][data-state="ready"]', timeout=20_000)
        assert chips(page) == expected_chips(chat_info(mgr))
        second = info["instances"][1]["id"]
        assert chips(page) == [["instance", "chat", "ready"], ["instance", second, "ready"],
                               ["upstream", upstream.host, "healthy"]]
        assert page.inner_text(f'{STRIP} [data-testid="serving-sum"]') == "2/2 ready"
        assert "plain" in page.inner_text(f'{STRIP} [data-testid="serving-fallbacks"]')
        for i in info["instances"]:  # where each runs, and its details on hover
            sel = f'{STRIP} [data-id="{i["id"]}"]'
            assert i["devices"][0] in page.inner_text(sel)
            assert f"port {i['port']}" in (page.get_attribute(sel, "title") or "")
        # 3 of 4 instances and 2 upstreams: the strip mirrors the API once its dead upstream has been found out
        # (a health check every 10 s), and it stays on one line.
        assert wait_until(lambda: not chat_info(mgr, "wide")["upstreams"][1]["healthy"], 30), \
            chat_info(mgr, "wide")["upstreams"]
        wide = '[data-testid="serving-wide"]'
        page.wait_for_function(
            "s => document.querySelectorAll(s).length === 3",
            arg=f'{wide} [data-kind="instance"][data-state="ready"]', timeout=30_000)
        page.wait_for_selector(f'{wide} [data-kind="upstream"]:not([data-state="healthy"])', timeout=10_000)
        assert [c[:2] for c in chips(page, wide)] == [c[:2] for c in expected_chips(chat_info(mgr, "wide"))]
        assert page.inner_text(f'{wide} [data-testid="serving-sum"]') == "3/4 ready"
        height = page.eval_on_selector(wide, "e => e.getBoundingClientRect().height")
        assert height < 40, f"the strip of 3 instances and 2 upstreams wraps at desktop width ({height}px)"
        # One local process: its row looks as it always did, with no strip under it.
        assert page.locator('[data-testid="serving-plain"]').count() == 0
        assert "has-serving" not in (page.get_attribute('[data-testid="model-row-plain"]', "class") or "")
        shot(page, "instances-models-desktop.png")

        # The detail panel lists every instance and the upstream in a sub-table.
        page.click('[data-testid="model-row-chat"] a.model-link')
        page.wait_for_selector('[data-testid="serving-table"]', timeout=10_000)
        ids = page.eval_on_selector_all('[data-testid="serving-table"] tbody tr', "rs => rs.map(r => r.dataset.id)")
        assert ids == ["chat", second, upstream.host]
        assert upstream.url in page.inner_text(f'[data-testid="serving-table"] tr[data-id="{upstream.host}"]')
        assert "sk-remote-e2e" not in page.content()  # the upstream's key is never shown
        shot(page, "instances-detail-desktop.png")

        # Live requests name who served each one, as the answers' X-LLM-Manager-Instance header did.
        page.click('nav >> text="Usage & cost"')
        page.wait_for_selector('#recent-title', timeout=10_000)
        with ThreadPoolExecutor(max_workers=6) as pool:
            served = list(pool.map(lambda i: chat(mgr, i), range(6)))
        assert len(set(served)) >= 2, f"6 concurrent requests on 3 targets all went to one: {served}"
        page.wait_for_function("n => document.querySelectorAll('[data-testid=\"served-by\"]').length >= n",
                               arg=6, timeout=20_000)
        shown = page.eval_on_selector_all('[data-testid="served-by"]', "cs => cs.map(c => c.title)")
        assert Counter(shown) == Counter(served), (shown, served)
        labels = set(page.eval_on_selector_all('[data-testid="served-by"]', "cs => cs.map(c => c.textContent)"))
        assert labels <= {"#0", "#1", upstream.host}, labels
        shot(page, "instances-usage-desktop.png")

        # The upstream goes away: requests still succeed (retried elsewhere) and it cools down, with back-off.
        upstream.stop()
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda i: chat(mgr, i), range(6)))
        # Each failed health check doubles the cool-down; only the first one is a message on the stream, so a
        # fresh snapshot (a reload) is what shows the cool-down as it is now: take it while 1.5 s or more remain.
        page.click('nav >> text="Models"')
        assert wait_until(lambda: (u := chat_info(mgr)["upstreams"][0])["failures"] >= 3 and u["cooling_s"] >= 1.5,
                          30), chat_info(mgr)["upstreams"]
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector(f'{upstream_chip(upstream)}[data-state="cooling"]', timeout=20_000)
        first = page.inner_text(f'{upstream_chip(upstream)} [data-testid="cooling"]')
        assert first.startswith("cooling "), first
        page.wait_for_function(  # the countdown ticks locally, between messages
            "([s, t]) => { const e = document.querySelector(s); return !e || e.textContent !== t; }",
            arg=[f'{upstream_chip(upstream)} [data-testid="cooling"]', first], timeout=10_000)
        assert "last error" in (page.get_attribute(upstream_chip(upstream), "title") or "")
        shot(page, "instances-cooling-desktop.png")

        # Phone width: the strip wraps under its model card; nothing scrolls sideways.
        page.set_viewport_size(PHONE)
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector(STRIP)
        fits(page)
        shot(page, "instances-models-phone.png")
        page.set_viewport_size(DESKTOP)

        # It comes back: a health check passes once its cool-down is over, and the chip turns healthy live.
        upstream.start()
        page.wait_for_selector(f'{upstream_chip(upstream)}[data-state="healthy"]', timeout=90_000)
        assert chat_info(mgr)["upstreams"][0]["healthy"] is True
    finally:
        context.close()
    assert not errors, "\n".join(errors)
