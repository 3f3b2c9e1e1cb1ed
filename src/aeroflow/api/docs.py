"""``/docs`` (Swagger UI) and ``/redoc`` from local assets: no CDN, a strict CSP.

The JavaScript and CSS come from the ``fastapi-offline`` PyPI package, used purely as a
maintained bundle of Swagger UI and Redoc builds; the pages themselves are FastAPI's own
``get_swagger_ui_html``/``get_redoc_html`` pointed at our static URLs. The one inline script
(Swagger UI's initialiser) is allowed by its SHA-256 hash rather than ``'unsafe-inline'``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import PathLike
from starlette.types import Scope

ASSETS_URL = "/static/docs"
_ASSET_CACHE_CONTROL = "public, max-age=86400"
_INLINE_SCRIPT_RE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def assets_directory() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def docs_content_security_policy(html: str) -> str:
    """CSP for a docs page: our own scripts plus exactly the inline scripts of this page.

    Styles need 'unsafe-inline' (Redoc injects <style> elements, Swagger UI sets style
    attributes); Redoc runs its search index in a worker created from a blob: URL.
    """
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT_RE.findall(html)
    )
    script_src = f"'self' {hashes}".rstrip()
    return (
        "default-src 'none'; "
        f"script-src {script_src}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "font-src 'self' data:; "
        "connect-src 'self'; "
        "worker-src 'self' blob:; "
        "frame-ancestors 'none'; "
        "base-uri 'none'; "
        "form-action 'none'"
    )


class _AssetFiles(StaticFiles):
    """Static files with a day of browser caching (versioned by the installed package)."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = _ASSET_CACHE_CONTROL
        return response


def install_docs(app: FastAPI, *, openapi_url: str) -> None:
    app.mount(ASSETS_URL, _AssetFiles(directory=assets_directory()), name="docs-assets")

    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=None,
        # Swagger UI would otherwise send the document to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title} API",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
    swagger_page = _page(bytes(swagger.body))
    redoc_page = _page(bytes(redoc.body))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> Response:
        return swagger_page()

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> Response:
        return redoc_page()


def _page(body: bytes) -> Callable[[], Response]:
    """Responses for one fixed page, rendered and hashed once at start-up."""
    headers = {"Content-Security-Policy": docs_content_security_policy(body.decode())}

    def page() -> Response:
        return HTMLResponse(body, headers=headers)

    return page
