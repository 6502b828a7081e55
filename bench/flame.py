"""Where a flame graph's samples are spent: own ("self") samples per function, from the SVG.

py-spy writes its flame graphs with inferno, which gives every frame its sample counts as
attributes (`fg:x`, the first sample; `fg:w`, how many) and its depth as the row it is drawn in.
A frame's own samples are its samples minus those of the frames directly above it; summed per
function (file and name, all lines together), they say what a process spends its CPU on.
"""

from __future__ import annotations

import bisect
import html
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(
    r'<g><title>(?P<title>[^<]*)</title><rect [^>]*?y="(?P<y>[\d.]+)"[^>]*?'
    r'fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
_SAMPLES_SUFFIX = re.compile(r" \([\d,]+ samples?, [\d.]+%\)$")
_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Frame:
    name: str
    depth: int
    x: int
    w: int


def frames(svg: str) -> list[Frame]:
    raw = [
        (html.unescape(m["title"]), float(m["y"]), int(m["x"]), int(m["w"]))
        for m in _FRAME.finditer(svg)
    ]
    if not raw:
        return []
    rows = sorted({y for _, y, _, _ in raw})
    root_y = next(y for title, y, _, _ in raw if title.startswith("all "))
    if root_y != rows[0]:  # drawn bottom-up: the root is the lowest row
        rows.reverse()
    depth_of = {y: depth for depth, y in enumerate(rows)}
    return [Frame(_function(title), depth_of[y], x, w) for title, y, x, w in raw if w > 0]


def _function(title: str) -> str:
    """`name (file:line) (N samples, P%)` → `name (file)`."""
    name = _SAMPLES_SUFFIX.sub("", title)
    return _LINE.sub(")", name)


def own_samples(all_frames: list[Frame]) -> tuple[int, Counter[str]]:
    """Total samples, and own samples per function."""
    by_depth: dict[int, list[Frame]] = defaultdict(list)
    for frame in all_frames:
        by_depth[frame.depth].append(frame)
    for row in by_depth.values():
        row.sort(key=lambda f: f.x)
    own: Counter[str] = Counter()
    total = 0
    for depth, row in by_depth.items():
        above = by_depth.get(depth + 1, [])
        starts = [f.x for f in above]
        for frame in row:
            if depth == 0:
                total += frame.w
                continue
            first = bisect.bisect_left(starts, frame.x)
            last = bisect.bisect_left(starts, frame.x + frame.w)
            covered = sum(f.w for f in above[first:last])
            own[frame.name] += frame.w - covered
    return total, own


_FILE = re.compile(r"\(([^()]*)\)$")


def package(function: str) -> str:
    """`name (nats/aio/client.py)` → `nats`; a file at the top level is its own package."""
    found = _FILE.search(function)
    path = found.group(1) if found else function
    first = path.split("/", 1)[0]
    return first.removesuffix(".py")


def by_package(own: Counter[str]) -> Counter[str]:
    grouped: Counter[str] = Counter()
    for function, count in own.items():
        grouped[package(function)] += count
    return grouped


def hottest(svg_file: Path) -> tuple[int, Counter[str]]:
    """Total samples and own samples per function of one flame graph."""
    return own_samples(frames(svg_file.read_text()))
