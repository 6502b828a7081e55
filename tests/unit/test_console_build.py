"""The console shipped in the gateway package is built from the sources in the repository."""

from __future__ import annotations

import re

from tests.console_sources import BUILT_CONSOLE, recorded_fingerprint, source_fingerprint

# The whole console, compressed as it is sent: a guard against a heavy dependency slipping in.
MAX_SCRIPT_GZIP_BYTES = 180_000
MAX_STYLE_GZIP_BYTES = 12_000


def test_the_built_console_is_fresh() -> None:
    assert recorded_fingerprint() == source_fingerprint(), (
        "clients/console or clients/typescript changed since the console was built: "
        "run `make console` and commit services/gateway/flowstream_gateway/console/"
    )


def test_the_page_loads_only_files_that_were_built() -> None:
    page = (BUILT_CONSOLE / "index.html").read_text()
    referenced = re.findall(r'(?:src|href)="/console/([^"]+)"', page)
    assert any(name.endswith(".js") for name in referenced)
    for name in referenced:
        assert (BUILT_CONSOLE / name).is_file(), name
        assert (BUILT_CONSOLE / f"{name}.gz").is_file(), f"{name} has no pre-compressed twin"


def test_the_bundle_stays_lean() -> None:
    assets = BUILT_CONSOLE / "assets"
    scripts = sum(p.stat().st_size for p in assets.glob("*.js.gz"))
    styles = sum(p.stat().st_size for p in assets.glob("*.css.gz"))
    assert 0 < scripts <= MAX_SCRIPT_GZIP_BYTES
    assert 0 < styles <= MAX_STYLE_GZIP_BYTES
