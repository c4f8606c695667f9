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


def test_one_table_of_item_types() -> None:
    """Every item type the server knows is one row: an id prefix, the SDK type it is checked
    against, and every input item type the SDK defines has a row."""
    import typing

    from openai.types.responses.response_input_item_param import ResponseInputItemParam

    from rejoinder.ids import PREFIX_BY_ITEM_TYPE
    from rejoinder.tools.registry import BUILTIN

    rows = BUILTIN.item_types
    assert all(row.id_prefix for row in rows.values()), [t for t, r in rows.items() if not r.id_prefix]
    assert all(row.param is not None for t, row in rows.items() if t != "message")
    assert {t: PREFIX_BY_ITEM_TYPE[t] for t in rows} == {t: r.id_prefix for t, r in rows.items()}
    def literal(hint: object) -> str:
        arg = typing.get_args(hint)[0]
        return arg if isinstance(arg, str) else literal(arg)  # Optional[Literal[...]]

    sdk = {literal(typing.get_type_hints(m)["type"]) for m in typing.get_args(ResponseInputItemParam)
           if "type" in typing.get_type_hints(m)}
    assert sdk - {"compaction_trigger"} <= set(rows), sdk - set(rows)
