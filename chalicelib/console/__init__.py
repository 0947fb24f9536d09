"""The console's own assets, served by the API itself (`GET /console`, `GET /console/{asset}`).

Served from the API rather than S3 and CloudFront: the console then shares the API's origin, so its
calls are same-origin (no CORS, and `connect-src 'self'` suffices), `make run` serves exactly what is
deployed, and the template gains no bucket, distribution or origin access to keep in step. The price is a
Lambda invocation per asset on a cold browser cache (five files, about 90 KB, cached for
CACHE_SECONDS afterwards); docs/console.md has the figures.

Every response carries a strict Content-Security-Policy: scripts, styles and fetches from this origin only,
no inline script or style, no framing. The files are read once per process, on first use.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

from chalicelib.errors import NotFound

HERE = Path(__file__).resolve().parent
# name -> content type; nothing else in this folder is served.
ASSETS: Dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "uplot.js": "text/javascript; charset=utf-8",
    "uplot.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
CACHE_SECONDS = 300
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def asset(name: str) -> Tuple[str, Dict[str, str]]:
    """An asset's text and headers; NotFound for any name not in ASSETS."""
    if name not in ASSETS:
        raise NotFound("No such console file.")
    # The page itself is revalidated every time, so a deploy reaches browsers at once; its files are cached.
    cache = "no-cache" if name == "index.html" else f"public, max-age={CACHE_SECONDS}"
    return _read(name), {"Content-Type": ASSETS[name], "Cache-Control": cache, **SECURITY_HEADERS}
