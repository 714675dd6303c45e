"""End to end: the WebUI's Cluster page (webui/dist) on two real managers sharing one real PostgreSQL, in headless
Chromium: both nodes are listed up with their models, this node marked. Needs ``cd webui && npm run build`` first;
the screenshot goes to ``tests/e2e/output/`` for a person to look at."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ManagerProcess, chromium_browser, config_doc, fake_model, wait_until
from postgres import create_database, drop_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DIST_INDEX = ROOT / "webui" / "dist" / "index.html"
OUTPUT = Path(__file__).resolve().parent / "output"
ADMIN = "sk-e2e-cluster-admin"
STORAGE_KEY = "llm-manager.adminKey"  # webui/src/api/auth.ts


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[dict[str, ManagerProcess]]:
    if not DIST_INDEX.is_file():
        pytest.skip(f"WebUI not built ({DIST_INDEX} missing): run `cd webui && npm ci && npm run build`")
    url = create_database(postgres_url, "webui_cluster")
    out: dict[str, ManagerProcess] = {}
    try:
        for name, model in (("north", "chat-north"), ("south", "chat-south")):
            doc = config_doc({model: fake_model()}, {"gpu0": 16000}, admin_key=ADMIN, database_url=url,
                             node_name=name, cluster_secret="e2e-cluster-secret-0123456789")
            out[name] = ManagerProcess(tmp_path_factory.mktemp(name), doc)
        yield out
    finally:
        for m in out.values():
            m.stop()
        drop_database(url)


def test_the_cluster_page_lists_both_nodes(nodes: dict[str, ManagerProcess]) -> None:
    north = nodes["north"]
    north.http.headers["Authorization"] = f"Bearer {ADMIN}"
    assert wait_until(lambda: len(north.http.get("/api/cluster").json()["nodes"]) == 2, 20)
    OUTPUT.mkdir(exist_ok=True)
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(f"window.localStorage.setItem({json.dumps(STORAGE_KEY)}, {json.dumps(ADMIN)})")
        page = context.new_page()
        page.goto(north.url + "/cluster", wait_until="domcontentloaded")
        page.get_by_test_id("cluster-summary").filter(has_text="2 of 2 nodes up").wait_for(timeout=20000)
        assert "(this node)" in page.get_by_test_id("node-north").inner_text()
        assert page.get_by_test_id("node-model-south-chat-south").is_visible()
        page.screenshot(path=str(OUTPUT / "cluster-desktop.png"), full_page=True)
        context.close()
