"""Standalone entry: ``panel serve llm_manager/panel_app/app.py`` — a running manager's dashboard, or a usage
database analysed on its own.

* ``--args --database-url sqlite:///path/usage.db`` (or ``LLM_MANAGER_DATABASE_URL``; PostgreSQL URLs too): the
  analysis tabs over that database, read-only, with no manager running. ``--currency EUR`` labels its amounts.
* otherwise the manager at ``--url`` / ``LLM_MANAGER_URL`` (default http://127.0.0.1:8080), with
  ``LLM_MANAGER_ADMIN_KEY`` when its management API needs a key; the dashboard can run on another machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import panel as pn

from llm_manager.client import Client
from llm_manager.panel_app.dashboard import create_dashboard
from llm_manager.panel_app.database import DatabaseSource
from llm_manager.panel_app.source import RemoteSource


def source_from_args(argv: list[str]) -> Any:
    """The source the command line (or the environment) names; one DatabaseSource per URL for all sessions."""
    ap = argparse.ArgumentParser(prog="panel serve llm_manager/panel_app/app.py --args")
    ap.add_argument("--database-url", help="analyse this usage database alone (read-only)")
    ap.add_argument("--url", help="the manager's URL (default LLM_MANAGER_URL or http://127.0.0.1:8080)")
    ap.add_argument("--currency", help="the currency of a database's amounts (default USD)")
    args, _ = ap.parse_known_args(argv)
    db = args.database_url or os.environ.get("LLM_MANAGER_DATABASE_URL")
    if db:
        cache = pn.state.cache.setdefault("llm_manager_database_sources", {})
        if db not in cache:
            cache[db] = DatabaseSource(db, args.currency)
        return cache[db]
    return RemoteSource(Client(args.url))


create_dashboard(source_from_args(sys.argv[1:])).servable(title="llm-manager")
