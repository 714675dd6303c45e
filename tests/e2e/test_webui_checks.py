"""The WebUI's own checks (TypeScript strict, ESLint + Prettier, Vitest component tests) as part of the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEBUI = Path(__file__).resolve().parents[2] / "webui"


@pytest.fixture(scope="module")
def npm() -> str:
    npm = shutil.which("npm")
    if npm is None or not (WEBUI / "node_modules").is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must install the WebUI's packages (cd webui && npm ci)")
        pytest.skip("webui/node_modules missing: run `cd webui && npm ci`")
    return npm


@pytest.mark.e2e
@pytest.mark.parametrize("script", ["type-check", "lint", "test"])
def test_webui_script_passes(npm, script):
    r = subprocess.run([npm, "run", script], cwd=WEBUI, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"npm run {script} failed:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
