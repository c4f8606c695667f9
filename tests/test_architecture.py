"""Small modules with one job: no module of the package is over 400 lines; SSE framed in one place."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "rejoinder"
MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_sse_is_framed_in_one_module() -> None:
    """The engine yields typed events; only http/sse.py writes ``event:``/``data:`` lines."""
    framing = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if 'b"event: "' in p.read_text()
               or "b'event: '" in p.read_text() or '"\\ndata: "' in p.read_text()}
    assert framing == {"http/sse.py"}, framing
