from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from postgres import pg_database, postgres_url  # noqa: E402, F401  (fixtures for every test that needs PostgreSQL)

# llama.cpp's AMX kernels, which a native build picks on a CPU that advertises AMX, crash (SIGSEGV in
# ggml_backend_amx_mul_mat) in VMs that do not grant the tile state; with weight repacking off they are not used.
# Every llama-server the tests start inherits this (llama.cpp reads LLAMA_ARG_REPACK like --no-repack).
os.environ.setdefault("LLAMA_ARG_REPACK", "0")

# Browser and real-llama tests skip on a machine without chromium or llama-server, but in CI
# (.ci/run installs both) a skip would hide a broken install: there it counts as a failure.
MUST_RUN_IN_CI = ("e2e", "real")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CI") and any(item.get_closest_marker(m) for m in MUST_RUN_IN_CI):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where it must run: {report.longrepr}"
