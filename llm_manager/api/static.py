"""The React WebUI at / from webui/dist (SPA fallback to index.html; nothing outside dist is served).

It is the catch-all route, so it is also what an API client reaches with a wrong path: anything but a
GET/HEAD gets the same OpenAI-style JSON 404 as the rest of the API, never Tornado's HTML 405 page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import tornado.web

# LLM_MANAGER_WEBUI_DIST: serve a WebUI built elsewhere (packagers; the tests point it at temp folders).
WEBUI_DIST = Path(os.environ.get("LLM_MANAGER_WEBUI_DIST") or Path(__file__).resolve().parents[2] / "webui" / "dist")

NOT_BUILT = """<!doctype html><html><head><meta charset="utf-8"><title>llm-manager</title>
<style>body{font:16px system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:4px}</style></head><body>
<h1>llm-manager is running</h1>
<p>The React WebUI is not built yet. Build it once with:</p>
<pre><code>cd webui &amp;&amp; npm ci &amp;&amp; npm run build</code></pre>
<p>Meanwhile the live <a href="/dashboard">Panel dashboard</a> is here, and the OpenAI-compatible API is at
<code>/v1</code> (<a href="/v1/models">/v1/models</a>, <a href="/api/models-info">/api/models-info</a>).</p>
</body></html>"""


class WebUIHandler(tornado.web.StaticFileHandler):
    """Serves a file from dist when it exists, else index.html (client-side routes)."""

    SUPPORTED_METHODS = tornado.web.RequestHandler.SUPPORTED_METHODS  # the others get a JSON 404, not a 405

    def initialize(self, path: str | None = None, default_filename: str | None = "index.html") -> None:
        super().initialize(path=path or str(WEBUI_DIST), default_filename=default_filename)

    def prepare(self) -> None:
        if self.request.method not in ("GET", "HEAD"):
            raise tornado.web.HTTPError(404, f"no route for {self.request.method} {self.request.path}")

    async def get(self, path: str, include_body: bool = True) -> None:
        root = Path(self.root)
        if not (root / "index.html").is_file():
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-cache")
            self.finish(NOT_BUILT if include_body else None)
            return
        if "\x00" in path:  # no file has a NUL in its name (and the file system calls refuse one)
            raise tornado.web.HTTPError(404, f"no such file: {self.request.path}")
        try:
            target = (root / path).resolve()
            found = bool(path) and target.is_file() and root.resolve() in target.parents
        except OSError:  # a name too long for the file system: no file, so a client-side route
            found = False
        await super().get(path if found else "index.html", include_body)  # SPA fallback; also for escapes

    def compute_etag(self) -> str | None:
        if getattr(self, "absolute_path", None) is None:  # the not-built page: no file behind it
            return None
        return super().compute_etag()

    def set_extra_headers(self, path: str) -> None:
        if path == "index.html":
            self.set_header("Cache-Control", "no-cache")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The API's error shape (an API client that mistyped a path must not get an HTML page)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, tornado.web.HTTPError) and exc.log_message else self._reason
        if status_code >= 500:
            message = "internal error; see the server log"
        kind = "server_error" if status_code >= 500 else "invalid_request_error"
        self.set_header("Content-Type", "application/json")  # send_error has cleared the file's headers
        self.finish(json.dumps({"error": {"message": message, "type": kind, "param": None, "code": status_code}}))
