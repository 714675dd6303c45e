"""``program.cluster_secret`` (issue 17): parsed with the program block (config/program.py), refused when short,
never shown by /api/config's redaction."""

from __future__ import annotations

import pytest

from llm_manager.config.parse import parse_config
from llm_manager.config.redact import redact
from llm_manager.errors import ConfigError

SECRET = "s3cret-of-the-cluster-0123"


def test_the_secret_and_node_parse_and_are_redacted() -> None:
    raw = {"program": {"cluster_secret": SECRET, "node_name": "alpha", "node_url": "http://10.0.0.1:8080"}}
    program = parse_config(raw).program
    assert (program.cluster_secret, program.node_name, program.node_url) == (SECRET, "alpha", "http://10.0.0.1:8080")
    assert parse_config({}).program.cluster_secret is None
    assert redact(raw)["program"]["cluster_secret"] == "***" and SECRET not in repr(redact(raw))


@pytest.mark.parametrize("value", ["short", 12345])
def test_a_weak_or_mistyped_secret_is_refused(value: object) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"program": {"cluster_secret": value}})
    assert "program.cluster_secret" in str(err.value)
