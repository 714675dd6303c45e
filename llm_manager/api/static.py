"""The React WebUI at / from webui/dist (SPA fallback to index.html; nothing outside dist is served)."""

from __future__ import annotations

from pathlib import Path

import tornado.web

WEBUI_DIST = Path(__file__).resolve().parents[2] / "webui" / "dist"

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

    def initialize(self, path: str = str(WEBUI_DIST), default_filename: str | None = "index.html") -> None:
        super().initialize(path=path, default_filename=default_filename)

    async def get(self, path: str, include_body: bool = True) -> None:
        root = Path(self.root)
        if not (root / "index.html").is_file():
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(NOT_BUILT)
            return
        target = (root / path).resolve()
        if not path or not target.is_file() or root.resolve() not in target.parents:
            path = "index.html"  # SPA fallback; also where a path would escape dist
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        if path == "index.html":
            self.set_header("Cache-Control", "no-cache")
