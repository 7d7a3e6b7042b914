"""Check JSON read from disk against a dataclass's field types before any code relies on them.

Why: `manifest.json` is a file anyone can edit, truncate or replace. JSON of the wrong shape (a list where a
list of entries should be, a string where a size should be) would otherwise surface as a `TypeError` deep in
the catalog, the server or the build. The field annotations are the specification, so the check reads them
instead of repeating them: `int`, `float`, `str`, `bool`, `list[T]`, `dict[str, T]`, `Any` and `T | None`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any


def decode_json(raw: bytes, where: str, kind: str, fix: str, error: type[Exception]) -> Any:
    """`raw` parsed as JSON, or `error` with one line naming `where` and saying what to do (`fix`) when it is not
    UTF-8, not JSON, or nested too deeply for the parser. `kind` names what the document should be ("catalog")."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text (byte {exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON ({exc}); {fix}") from None
    except RecursionError:
        raise error(f"{where} is nested too deeply to be a {kind}; {fix}") from None


class ShapeError(ValueError):
    """A JSON value does not have the type a field declares; the message names the field."""


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def check_value(value: Any, kind: Any, where: str) -> None:
    """Raise ShapeError when `value` (parsed JSON) is not of the annotated type `kind`."""
    if kind is Any:
        return
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        for option in options:
            try:
                check_value(value, option, where)
                return
            except ShapeError:
                continue
        names = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
        raise ShapeError(f"{where} must be {names}, not {_describe(value)}")
    if kind is type(None):
        if value is not None:
            raise ShapeError(f"{where} must be null, not {_describe(value)}")
        return
    if origin is list:
        if not isinstance(value, list):
            raise ShapeError(f"{where} must be a list, not {_describe(value)}")
        (item,) = typing.get_args(kind) or (Any,)
        for index, element in enumerate(value):
            check_value(element, item, f"{where}[{index}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise ShapeError(f"{where} must be an object, not {_describe(value)}")
        _, item = typing.get_args(kind) or (str, Any)
        for key, element in value.items():
            check_value(element, item, f"{where}.{key}")
        return
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a field type this checker was not taught
        raise TypeError(f"json_shape cannot check {kind!r}")
    if not ok:
        raise ShapeError(f"{where} must be {'a number' if kind is float else kind.__name__}, not {_describe(value)}")


def check_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """The known fields of `data` (a JSON object for dataclass `cls`), each checked against its annotation.

    Unknown keys are dropped (newer writers may add fields); missing required fields are an error.
    """
    if not isinstance(data, dict):
        raise ShapeError(f"{where} must be an object, not {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = [
        name for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ShapeError(f"{where} lacks {missing}")
    known = {name: data[name] for name in fields if name in data}
    for name, value in known.items():
        check_value(value, hints[name], f"{where}.{name}")
    return known
