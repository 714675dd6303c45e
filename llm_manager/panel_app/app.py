"""Standalone entry: ``panel serve llm_manager/panel_app/app.py`` shows a running manager's dashboard.

The manager is reached over HTTP (``LLM_MANAGER_URL``, default http://127.0.0.1:8080; ``LLM_MANAGER_ADMIN_KEY``
when the management API needs a key), so the dashboard can run on another machine or restart on its own.
"""

from __future__ import annotations

from llm_manager.client import Client
from llm_manager.panel_app.dashboard import create_dashboard
from llm_manager.panel_app.source import RemoteSource

create_dashboard(RemoteSource(Client())).servable(title="llm-manager")
