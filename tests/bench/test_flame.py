"""Own samples per function from an inferno (py-spy) flame graph."""

from __future__ import annotations

from bench.flame import by_package, frames, own_samples


def _frame(title: str, y: int, x: int, w: int) -> str:
    return (
        f'<g><title>{title} ({w} samples, 1.00%)</title><rect x="0%" y="{y}" width="1%" '
        f'height="15" fill="rgb(1,2,3)" fg:x="{x}" fg:w="{w}"/>'
    )


# all (10) → main (10) → [work line 3 (6) → json dumps (4)], [wait (3)]; main's own: 1.
SVG = "".join(
    [
        _frame("all", 52, 0, 10),
        _frame("main (app.py:1)", 68, 0, 10),
        _frame("work (app.py:3)", 84, 0, 6),
        _frame("wait (asyncio/queues.py:9)", 84, 7, 3),
        _frame("dumps (json/__init__.py:2)", 100, 1, 4),
        _frame("work (app.py:4)", 84, 6, 1),
    ]
)


def test_own_samples_are_a_frames_samples_minus_those_above_it() -> None:
    total, own = own_samples(frames(SVG))
    assert total == 10
    assert own["main (app.py)"] == 0  # 10 - 6 - 3 - 1
    assert own["work (app.py)"] == 2 + 1  # both lines of one function together
    assert own["dumps (json/__init__.py)"] == 4
    assert own["wait (asyncio/queues.py)"] == 3


def test_a_graph_drawn_bottom_up_reads_the_same() -> None:
    flipped = SVG
    for y, mirrored in (("52", "900"), ("68", "884"), ("84", "868"), ("100", "852")):
        flipped = flipped.replace(f'y="{y}"', f'y="{mirrored}"')
    assert own_samples(frames(flipped)) == own_samples(frames(SVG))


def test_own_samples_add_up_per_package() -> None:
    _, own = own_samples(frames(SVG))
    assert by_package(own) == {"app": 3, "json": 4, "asyncio": 3}
