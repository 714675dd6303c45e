"""End to end: the WebUI's Batches page (webui/dist) on a real manager, driven by headless Chromium.

Batches are made with the official openai SDK: an embeddings batch with one bad line (it completes with an
output and an error file) and a slow chat batch that the page watches move and then cancels with its button.
The admin key is set in the page's localStorage as the Settings box would. Screenshots go to
``tests/e2e/output/`` for a person to look at. Needs ``cd webui && npm run build`` first.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ManagerProcess, chromium_browser, config_doc, fake_model, wait_until

pytestmark = pytest.mark.e2e

openai = pytest.importorskip("openai")

ROOT = Path(__file__).resolve().parents[2]
DIST_INDEX = ROOT / "webui" / "dist" / "index.html"
OUTPUT = Path(__file__).resolve().parent / "output"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ADMIN = "sk-e2e-batches-admin"
STORAGE_KEY = "llm-manager.adminKey"  # webui/src/api/auth.ts


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    if not DIST_INDEX.is_file():
        pytest.skip(f"WebUI not built ({DIST_INDEX} missing): run `cd webui && npm ci && npm run build`")
    models = {
        "embed": fake_model("Embedding"),
        "slow": fake_model("Chat", args=["--tokens-per-second", "10"], max_concurrency=1),
    }
    m = ManagerProcess(tmp_path_factory.mktemp("webui-batches"), config_doc(models, flush_interval=0.05,
                                                                            admin_key=ADMIN))
    yield m
    m.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as b:
        yield b


def sdk(mgr: ManagerProcess) -> Any:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key=ADMIN, max_retries=0, timeout=30)


def create_batch(client: Any, lines: list[dict[str, Any]], endpoint: str) -> Any:
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    file_id = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch").id
    return client.batches.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h",
                                 metadata={"made_by": "e2e"})


def shot(page: Any, name: str) -> None:
    # transitions finished at once, so a progress bar is drawn at its final width
    page.screenshot(path=str(OUTPUT / name), full_page=True, animations="disabled")


def fits(page: Any) -> None:
    """Neither the page nor the batch table scrolls sideways."""
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport + 1, f"page is {width}px wide in a {viewport}px window"
    over = page.eval_on_selector(".batch-scroll", "e => e.scrollWidth - e.clientWidth")
    assert over <= 1, f"the batch table overflows its card by {over}px"


def row(batch_id: str) -> str:
    return f'[data-testid="batch-row-{batch_id}"]'


def bar(batch_id: str) -> str:
    return f'[data-testid="batch-progress-{batch_id}"]'


def test_batches_page_shows_progress_cancels_and_downloads(mgr: ManagerProcess, browser: Any,
                                                           tmp_path: Path) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    client = sdk(mgr)
    errors: list[str] = []
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.add_init_script(f"window.localStorage.setItem({json.dumps(STORAGE_KEY)}, {json.dumps(ADMIN)})")
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("dialog", lambda d: d.accept())
    try:
        # No batch yet: the empty state says how to make one.
        page.goto(mgr.url + "/batches", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="batches-empty"]', timeout=20_000)
        assert "c.batches.create(" in (page.text_content('[data-testid="batches-empty"]') or "")
        assert page.locator('nav a.active').inner_text() == "Batches"
        shot(page, "batches-empty-desktop.png")

        # An embeddings batch: 12 good lines and one whose url is not the batch's endpoint (an error line).
        lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                  "body": {"model": "embed", "input": f"text {i}"}} for i in range(12)]
        lines.append({"custom_id": "wrong-url", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"model": "embed", "messages": [{"role": "user", "content": "hi"}]}})
        emb = create_batch(client, lines, "/v1/embeddings")
        page.click('button:has-text("Refresh")')
        page.wait_for_selector(row(emb.id), timeout=10_000)
        # It is polled while it runs: the row reaches "completed" with a full bar, without a reload.
        page.wait_for_selector(f'{row(emb.id)}[data-status="completed"]', timeout=60_000)
        page.wait_for_selector(f'{bar(emb.id)}[data-done="13"][data-total="13"]', timeout=10_000)
        assert page.get_attribute(f'{bar(emb.id)} [role="progressbar"]', "aria-valuenow") == "13"
        assert "13 / 13 (100%)" in page.inner_text(bar(emb.id))
        assert page.inner_text(f'{row(emb.id)} td[data-label="Failed"]').strip() == "1"
        assert page.locator(f'{row(emb.id)} button:has-text("Cancel")').count() == 0
        shot(page, "batches-completed-desktop.png")

        # The output file downloads through the client (the admin key is a header, not in a link).
        with page.expect_download() as dl:
            page.click(f'button[aria-label="Download output of {emb.id}"]')
        saved = tmp_path / "out.jsonl"
        dl.value.save_as(saved)
        assert dl.value.suggested_filename == f"{emb.id}_output.jsonl"
        out = [json.loads(x) for x in saved.read_text().splitlines()]
        assert sorted(x["custom_id"] for x in out) == sorted(f"e{i}" for i in range(12))
        with page.expect_download() as dl:
            page.click(f'button[aria-label="Download errors of {emb.id}"]')
        dl.value.save_as(tmp_path / "err.jsonl")
        err = [json.loads(x) for x in (tmp_path / "err.jsonl").read_text().splitlines()]
        assert [x["custom_id"] for x in err] == ["wrong-url"]

        # A slow chat batch: the page shows it move (newest first), then its Cancel button cancels it.
        slow = create_batch(client, [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                                      "body": {"model": "slow", "max_tokens": 5,
                                               "messages": [{"role": "user", "content": f"hi {i}"}]}}
                                     for i in range(40)], "/v1/chat/completions")
        assert wait_until(lambda: client.batches.retrieve(slow.id).request_counts.completed >= 2, 60), \
            "the slow batch did not start"
        page.click('button:has-text("Refresh")')
        page.wait_for_selector(f'{row(slow.id)}[data-status="in_progress"]', timeout=10_000)
        first = int(page.get_attribute(bar(slow.id), "data-done") or 0)
        page.wait_for_function(
            "([s, n]) => Number(document.querySelector(s)?.dataset.done || 0) > n",
            arg=[bar(slow.id), first], timeout=20_000,
        )  # moved by polling alone
        ids = page.eval_on_selector_all('[data-testid="batch-table"] tbody tr', "rs => rs.map(r => r.dataset.testid)")
        assert ids == [f"batch-row-{slow.id}", f"batch-row-{emb.id}"], ids
        shot(page, "batches-in-progress-desktop.png")

        page.click(f'button[aria-label="Cancel {slow.id}"]')
        page.wait_for_selector(f'{row(slow.id)}[data-status="cancelled"]', timeout=30_000)
        assert client.batches.retrieve(slow.id).status == "cancelled"
        done = int(page.get_attribute(bar(slow.id), "data-done") or 0)
        assert done == 40, f"every line of a cancelled batch is reported (output or error), got {done}"
        page.wait_for_selector(f'button[aria-label="Download errors of {slow.id}"]', timeout=5_000)
        fits(page)
        shot(page, "batches-desktop.png")

        # Phone width: the table turns into cards and the page does not scroll sideways.
        page.set_viewport_size(PHONE)
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector(row(emb.id), timeout=10_000)
        fits(page)
        shot(page, "batches-phone.png")
    finally:
        context.close()
    assert not errors, "\n".join(errors)
