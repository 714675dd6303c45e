"""Fixtures for the tests against llama.cpp's real ``llama-server`` (``../shared/real-llama/setup.sh``).

Without the server these tests skip, with the reason; under CI (env ``CI`` set) they fail instead,
because CI runs setup.sh first and a silent skip there would hide a broken setup.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_helpers, under any --import-mode

from llm_manager.demo.real import RealLlama, find_real_llama, real_llama_root

SETUP_HINT = "bash ../shared/real-llama/setup.sh (from the project root; about 6 minutes once)"


@pytest.fixture(scope="session")
def llama() -> RealLlama:
    """The installed llama-server and model, else skip (fail under CI)."""
    found = find_real_llama()
    if not found.installed:
        missing = found.server if not found.server.is_file() else found.model
        reason = f"real llama.cpp not installed ({missing} missing under {real_llama_root()}): run {SETUP_HINT}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-server tests: {reason}", pytrace=False)
        pytest.skip(reason)
    return found
