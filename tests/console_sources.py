"""The fingerprint of the web console's sources, recorded beside the built console.

`make console` builds the console into the gateway package and writes this fingerprint there;
a unit test recomputes it from the sources, so a change to the console (or to the TypeScript
client it bundles, or to the locked npm packages) without a rebuild fails the suite.

Run as `python -m tests.console_sources` to record the fingerprint after a build.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "clients"
BUILT_CONSOLE = ROOT / "services" / "gateway" / "flowstream_gateway" / "console"
FINGERPRINT_FILE = BUILT_CONSOLE / "SOURCES.sha256"

# What the bundle is built from; tests and browser scripts are not part of it.
SOURCE_DIRS = ("console/src", "typescript/src")
SOURCE_FILES = (
    "package.json",
    "package-lock.json",
    "console/package.json",
    "console/index.html",
    "console/tsconfig.json",
    "console/vite.config.ts",
    "typescript/package.json",
    "typescript/tsconfig.json",
    "typescript/tsconfig.build.json",
)


def _sources() -> Iterator[Path]:
    for name in SOURCE_FILES:
        yield CLIENTS / name
    for directory in SOURCE_DIRS:
        yield from (p for p in (CLIENTS / directory).rglob("*") if p.is_file())


def source_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(_sources(), key=lambda p: p.relative_to(CLIENTS).as_posix()):
        digest.update(path.relative_to(CLIENTS).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def recorded_fingerprint() -> str | None:
    if not FINGERPRINT_FILE.is_file():
        return None
    return FINGERPRINT_FILE.read_text().strip()


def main() -> int:
    if not (BUILT_CONSOLE / "index.html").is_file():
        print(f"no built console in {BUILT_CONSOLE}: run `make console`", file=sys.stderr)
        return 1
    FINGERPRINT_FILE.write_text(source_fingerprint() + "\n")
    print(f"recorded {FINGERPRINT_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
