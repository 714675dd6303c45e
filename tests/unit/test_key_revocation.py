"""Revoking a key through this node (the keys API's path, ``Accounting.revoke_key``) outlasts a background key
sync whose read of the store began before the revocation: applied, that stale read made the key work again."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import config_doc, fake_model

from llm_manager.accounting.layer import Accounting
from llm_manager.accounting.security import Caller
from llm_manager.accounting.store import UsageStore
from llm_manager.config.parse import parse_config
from llm_manager.errors import AuthenticationError
from llm_manager.runtime.manager import Manager


def test_a_sync_read_taken_before_a_revocation_here_is_dropped(tmp_path: Path) -> None:
    manager = Manager(parse_config(config_doc({"chat": fake_model()}, admin_key="admin"), tmp_path),
                      data_dir=tmp_path)
    store = UsageStore(None, tmp_path / "store", flush_interval=3600.0)
    try:
        accounting = Accounting(manager, store)
        accounting.create_key("stays")  # keys stay on: /v1 never opens
        made = accounting.create_key("revoked")
        caller = Caller(token=made["key"], ip="127.0.0.1")
        assert accounting.security.authorize(caller, "chat").id == made["id"]
        security = accounting.security
        read_at, stale = security.keys_version, security.store_keys()  # the sync's read, just before the revocation
        accounting.revoke_key(made["id"])
        security.take_store_keys(stale, read_at=read_at)  # that read arrives afterwards: dropped
        with pytest.raises(AuthenticationError):
            security.authorize(caller, "chat")
    finally:
        store.close()
