"""Keys, token buckets, budgets and their periods: the pure parts of security, case by case."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from llm_manager.accounting.record import UsageRecord
from llm_manager.accounting.security import (
    Caller,
    Security,
    TokenBucket,
    hash_key,
    period_bounds,
    presented_key,
)
from llm_manager.config.blocks import parse_budgets, parse_config_keys
from llm_manager.config.parse import ProgramConfig
from llm_manager.errors import AuthenticationError, BudgetExceeded, ConfigError, PermissionDenied, RateLimited


def request(token: str | None = None, ip: str = "127.0.0.1") -> Caller:
    return Caller(presented_key(f"Bearer {token}" if token else None), ip)


def test_period_bounds_day_and_month_utc():
    t = datetime(2026, 2, 14, 15, 30, tzinfo=timezone.utc).timestamp()
    start, end = period_bounds("day", t)
    assert datetime.fromtimestamp(start, timezone.utc) == datetime(2026, 2, 14, tzinfo=timezone.utc)
    assert end - start == 86400
    start, end = period_bounds("month", t)
    assert datetime.fromtimestamp(start, timezone.utc) == datetime(2026, 2, 1, tzinfo=timezone.utc)
    assert datetime.fromtimestamp(end, timezone.utc) == datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(60)  # one per second, burst of 60
    for _ in range(60):
        assert bucket.wait_time() == 0
        bucket.take(1)
    wait = bucket.wait_time()
    assert 0.9 < wait <= 1.0
    bucket.stamp -= 2.0  # two seconds pass
    assert bucket.wait_time() == 0


def test_keys_from_config_hashed_and_scoped():
    keys = parse_config_keys(("sk-a", {"key": "sk-b", "name": "b", "models": ["m1"]},
                              {"key_hash": hash_key("sk-c")[7:], "name": "c"}))
    assert set(keys) == {hash_key("sk-a"), hash_key("sk-b"), hash_key("sk-c")}
    assert keys[hash_key("sk-b")].models == ("m1",)
    with pytest.raises(ConfigError, match=r"program.api_keys\[0\]"):
        parse_config_keys(({"name": "no secret"},))


@pytest.mark.parametrize("raw, path", [
    ({"scope": "team"}, "program.budgets[0].scope"),
    ({"period": "week"}, "program.budgets[0].period"),
    ({"unit": "euros", "limit": 1}, "program.budgets[0].unit"),
    ({"limit": 0}, "program.budgets[0].limit"),
    ({"scope": "key", "limit": 5}, "program.budgets[0].key"),
])
def test_budget_config_errors_name_the_path(raw, path):
    with pytest.raises(ConfigError) as err:
        parse_budgets(({"limit": 10, **raw},))
    assert err.value.path == path


def make_security(**program) -> Security:
    return Security(ProgramConfig(**program), store=None, resolve=lambda n: {"alias": "m1"}.get(n, n))


def test_open_server_but_per_ip_rate_limit_applies():
    sec = make_security(rate_limits={"per_ip": {"rpm": 2}})
    assert not sec.auth_required
    assert sec.authorize(request(ip="10.0.0.5"), "m1") is None
    sec.authorize(request(ip="10.0.0.5"), "m1")
    with pytest.raises(RateLimited) as err:
        sec.authorize(request(ip="10.0.0.5"), "m1")
    assert int(err.value.headers["Retry-After"]) >= 1
    assert sec.authorize(request(ip="10.0.0.6"), "m1") is None  # another client has its own bucket


def test_model_scoped_key_resolves_aliases():
    sec = make_security(api_keys=({"key": "sk-b", "name": "b", "models": ["m1"]},))
    assert sec.authorize(request("sk-b"), "alias").name == "b"
    with pytest.raises(PermissionDenied):
        sec.authorize(request("sk-b"), "m2")
    with pytest.raises(AuthenticationError):
        sec.authorize(request(None), "m1")


def test_admin_key_and_loopback_only_management():
    sec = make_security(admin_key="sk-admin", api_keys=("sk-a",))
    sec.authorize_admin(request("sk-admin", ip="10.1.1.1"))
    with pytest.raises(AuthenticationError):
        sec.authorize_admin(request("sk-a"))
    open_sec = make_security()
    open_sec.authorize_admin(request(ip="127.0.0.1"))
    with pytest.raises(PermissionDenied, match="loopback"):
        open_sec.authorize_admin(request(ip="192.0.2.10"))


def test_monthly_cost_budget_warns_and_blocks():
    events = []
    sec = make_security(budgets=({"name": "monthly", "scope": "global", "period": "month", "limit": 1.0,
                                  "unit": "cost"},))
    sec.bus = SimpleNamespace(publish=lambda _t, e: events.append(e["detail"]))
    sec.init_budgets()
    for cost in (0.4, 0.2, 0.3):
        sec.check_budget(None, "m1")
        sec.on_usage(UsageRecord(model="m1", endpoint="chat/completions", status=200, cost=cost, ts=time.time()))
    assert [d.split(" at ")[1].split(" %")[0] for d in events] == ["50", "80"]
    sec.on_usage(UsageRecord(model="m1", endpoint="chat/completions", status=200, cost=0.2, ts=time.time()))
    assert events[-1].startswith("budget 'monthly' at 100 %")
    with pytest.raises(BudgetExceeded, match="budget 'monthly' exhausted: 1.1 of 1") as err:
        sec.check_budget(None, "m1")
    assert "resets at" in err.value.message and int(err.value.headers["Retry-After"]) > 0


def test_key_token_rate_limit_counts_tokens_after_the_answer():
    sec = make_security(api_keys=({"key": "sk-t", "name": "t", "tpm": 100},))
    key = sec.authorize(request("sk-t"), "m1")
    sec.on_usage(UsageRecord(model="m1", endpoint="x", status=200, key_id=key.id, prompt_tokens=80,
                             completion_tokens=40))
    with pytest.raises(RateLimited, match="tokens/minute"):
        sec.authorize(request("sk-t"), "m1")


def test_a_key_sync_read_before_a_revocation_here_does_not_bring_the_key_back(tmp_path):
    """The background sync reads the store's keys off the loop; a key revoked through this node meanwhile must stay
    revoked (that stale read, applied, made it work again until the next sync)."""
    from llm_manager.accounting.schema import ApiKey
    from llm_manager.accounting.store import UsageStore

    with UsageStore(f"sqlite:///{tmp_path / 'usage.db'}", tmp_path, flush_interval=3600.0) as store:
        for key_id, secret in (("key-0", "sk-stays"), ("key-1", "sk-secret")):  # one stays: /v1 is never open
            store.add_key(ApiKey(id=key_id, name=key_id, key_hash=hash_key(secret), prefix=secret, models="[]"))
        sec = Security(ProgramConfig(), store=store, resolve=lambda n: n)
        assert sec.authorize(request("sk-secret"), "m1").id == "key-1"
        version = sec.keys_version
        stale = sec.store_keys()  # the sync's read, taken just before the revocation
        assert store.revoke_key("key-1")
        sec.load_store_keys()  # what revoke_key does after the store's delete
        sec.take_store_keys(stale, read_at=version)  # the sync's read arrives afterwards: dropped
        with pytest.raises(AuthenticationError):
            sec.authorize(request("sk-secret"), "m1")
        sec.take_store_keys(sec.store_keys(), read_at=sec.keys_version)  # a fresh read applies as before
        with pytest.raises(AuthenticationError):
            sec.authorize(request("sk-secret"), "m1")
        store.add_key(ApiKey(id="key-2", name="new", key_hash=hash_key("sk-other"), prefix="sk-other", models="[]"))
        sec.take_store_keys(sec.store_keys(), read_at=sec.keys_version)  # another node's new key arrives
        assert sec.authorize(request("sk-other"), "m1").id == "key-2"
