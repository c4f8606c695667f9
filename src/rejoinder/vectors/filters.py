"""Attribute filters (openai's ``ComparisonFilter`` and ``CompoundFilter``), checked and compiled
into the search query's WHERE clause, so the database filters before it ranks.

A comparison only matches an attribute of the value's kind: ``{"type": "gt", "value": 3}`` never
matches the string "4", and ``ne``/``nin`` match files that lack the key. Strings compare as
strings (ISO dates order correctly), numbers as numbers, booleans only with eq/ne/in/nin.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Text, and_, case, cast, false, func, literal, not_, or_, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from rejoinder.errors import InvalidRequest
from rejoinder.vectors.params import check_object, number, required, string

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
MAX_DEPTH = 8
MAX_CONDITIONS = 100
Scalar = str | float | bool


def validate(value: Any, param: str = "filters") -> dict[str, Any] | None:
    if value is None:
        return None
    count = [0]
    return _validate(value, param, 1, count)


def _validate(value: Any, param: str, depth: int, count: list[int]) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"Invalid '{param}': filters nest more than {MAX_DEPTH} levels.", param=param,
                             code="invalid_value")
    count[0] += 1
    if count[0] > MAX_CONDITIONS:
        raise InvalidRequest(f"Invalid 'filters': more than {MAX_CONDITIONS} conditions.", param="filters",
                             code="invalid_value")
    body = check_object(value, ("type", "key", "value", "filters"), param)
    kind = required(body, "type", f"{param}.type")
    if kind in ("and", "or"):
        check_object(body, ("type", "filters"), param)
        items = required(body, "filters", f"{param}.filters")
        if not isinstance(items, list) or not items:
            raise InvalidRequest(f"Invalid '{param}.filters': expected a non-empty array of filters.",
                                 param=f"{param}.filters", code="invalid_value")
        return {"type": kind, "filters": [_validate(f, f"{param}.filters[{i}]", depth + 1, count)
                                          for i, f in enumerate(items)]}
    if kind not in COMPARISONS:
        raise InvalidRequest(f"Invalid value: '{kind}'. Supported values are: "
                             f"{', '.join(repr(c) for c in (*COMPARISONS, 'and', 'or'))}.",
                             param=f"{param}.type", code="invalid_value")
    check_object(body, ("type", "key", "value"), param)
    key = string(required(body, "key", f"{param}.key"), f"{param}.key", max_len=64)
    assert key is not None
    if '"' in key or "\\" in key:
        raise InvalidRequest(f"Invalid '{param}.key': a key to filter on may not contain quotes or backslashes.",
                             param=f"{param}.key", code="invalid_value")
    raw = required(body, "value", f"{param}.value")
    if kind in ("in", "nin"):
        if not isinstance(raw, list) or not raw:
            raise InvalidRequest(f"Invalid '{param}.value': '{kind}' takes a non-empty array.",
                                 param=f"{param}.value", code="invalid_value")
        return {"type": kind, "key": key, "value": [_scalar(v, f"{param}.value[{i}]", bools=False)
                                                     for i, v in enumerate(raw)]}
    scalar = _scalar(raw, f"{param}.value", bools=kind in ("eq", "ne"))
    return {"type": kind, "key": key, "value": scalar}


def _scalar(value: Any, param: str, *, bools: bool) -> Scalar:
    if isinstance(value, bool):
        if not bools:
            raise InvalidRequest(f"Invalid '{param}': booleans compare only with eq and ne.", param=param,
                                 code="invalid_value")
        return value
    if isinstance(value, str):
        return value
    return number(value, param)


class _Dialect:
    """How one database reads an attribute out of the JSON column."""

    def __init__(self, column: Any, postgres: bool):
        self.column = column
        self.postgres = postgres

    def kind(self, key: str) -> ColumnElement[Any]:
        if self.postgres:
            return func.jsonb_typeof(type_coerce(self.column, JSONB).op("->")(literal(key)))
        return func.json_type(self.column, f'$."{key}"')

    def text(self, key: str) -> ColumnElement[Any]:
        if self.postgres:
            return type_coerce(self.column, JSONB).op("->>", return_type=Text)(literal(key))
        return func.json_extract(self.column, f'$."{key}"')

    def is_string(self, key: str) -> ColumnElement[bool]:
        return self.kind(key) == ("string" if self.postgres else "text")

    def is_number(self, key: str) -> ColumnElement[bool]:
        if self.postgres:
            return self.kind(key) == "number"
        return self.kind(key).in_(["integer", "real"])

    def number(self, key: str) -> ColumnElement[Any]:
        if self.postgres:  # a cast only where the value is a number: SQL may evaluate AND in any order
            return case((self.is_number(key), cast(self.text(key), Float)), else_=None)
        return case((self.is_number(key), self.text(key)), else_=None)

    def boolean(self, key: str, value: bool) -> ColumnElement[bool]:
        if self.postgres:
            return and_(self.kind(key) == "boolean", self.text(key) == ("true" if value else "false"))
        return self.kind(key) == ("true" if value else "false")


_OPS = {"eq": "__eq__", "gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}


def _compare(d: _Dialect, op: str, key: str, value: Scalar) -> ColumnElement[bool]:
    if isinstance(value, bool):
        return d.boolean(key, value)
    if isinstance(value, str):
        return and_(d.is_string(key), getattr(d.text(key), _OPS[op])(value))
    return and_(d.is_number(key), getattr(d.number(key), _OPS[op])(value))


def _never_null(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """A missing key makes a comparison NULL; as a plain boolean, NOT of it is then true."""
    return case((condition, true()), else_=false())


def compile_filter(node: dict[str, Any], column: Any, postgres: bool) -> ColumnElement[bool]:
    d = _Dialect(column, postgres)
    return _compile(node, d)


def _compile(node: dict[str, Any], d: _Dialect) -> ColumnElement[bool]:
    kind = node["type"]
    if kind in ("and", "or"):
        parts = [_compile(f, d) for f in node["filters"]]
        return and_(*parts) if kind == "and" else or_(*parts)
    key, value = node["key"], node["value"]
    if kind in ("in", "nin"):
        matched = _never_null(or_(*(_compare(d, "eq", key, v) for v in value)))
        return not_(matched) if kind == "nin" else matched
    if kind == "ne":
        return not_(_never_null(_compare(d, "eq", key, value)))
    return _never_null(_compare(d, kind, key, value))
