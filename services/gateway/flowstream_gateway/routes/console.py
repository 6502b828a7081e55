"""The web console: a built single-page app shipped in this package, served at `/`.

The page and its assets need no token (they hold no data); every API call the page makes does.
Only files present in the built console are served, by exact name: a request path is looked up,
never joined onto the file system. Hashed assets are cached for good; the page itself is revalidated
so a new build is picked up at once. Scripts and styles are sent pre-compressed when the browser
accepts gzip (the build writes `<asset>.gz` beside each).
"""

from __future__ import annotations

import functools
import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from flowstream_gateway.errors import not_found

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
ASSET_PREFIX = "/console/"

# Same-origin only: the page talks to this gateway and loads nothing from elsewhere. React Flow
# positions nodes with inline styles, hence 'unsafe-inline' for styles (never for scripts).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
IMMUTABLE = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


@functools.cache
def _built_files() -> dict[str, Path]:
    """Relative path → file, read once: the console is part of the installed package."""
    if not CONSOLE_DIR.is_dir():
        return {}
    return {
        path.relative_to(CONSOLE_DIR).as_posix(): path
        for path in CONSOLE_DIR.rglob("*")
        if path.is_file()
    }


@router.get("/")
async def console_page() -> Response:
    page = _built_files().get("index.html")
    if page is None:
        raise not_found("the web console (build it with `make console`)")
    return FileResponse(
        page, media_type="text/html", headers={"cache-control": "no-cache", **SECURITY_HEADERS}
    )


@router.get(ASSET_PREFIX + "{asset_path:path}")
async def console_asset(asset_path: str, request: Request) -> Response:
    files = _built_files()
    path = files.get(asset_path)
    if path is None or asset_path.endswith(".gz") or asset_path == "index.html":
        raise not_found(f"console file {asset_path}")
    media_type = mimetypes.guess_type(asset_path)[0] or "application/octet-stream"
    cache = IMMUTABLE if asset_path.startswith("assets/") else "no-cache"
    headers = {"cache-control": cache, "vary": "accept-encoding", **SECURITY_HEADERS}
    compressed = files.get(asset_path + ".gz")
    if compressed is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return FileResponse(compressed, media_type=media_type, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)
