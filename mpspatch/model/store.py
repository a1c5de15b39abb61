"""The state store: one versioned-JSON codec for every state file mpspatch keeps.

A state file holds one frozen dataclass. `StateFile` describes a kind of file (its model, version, how a
message names it, and the fix a user applies when it is broken) and turns values into JSON and back. Reading
checks everything the model promises: the version, every required key, every type, and every id (the
validators of `foundation.ids`), so a bad file is one exit-2 line naming the file, what is wrong and the fix.

The field types the codec knows:

- str, int, float, bool; `Path` (a string); enums (their value);
- NewType ids (`CommitSha`, `TreeSha`, `ContentSha256`, `RunId` are validated; others as their base type);
- `X | None` (null); nested dataclasses (objects; a field with a default may be absent);
- `tuple[X, ...]` (a list), `tuple[A, B]` (a list of that length), and `tuple[tuple[str, X], ...]` (an
  object: pairs are how a frozen model keeps a mapping, in order).

Keys are written sorted unless the kind keeps field order; both are deterministic.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, Generic, NewType, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from mpspatch.foundation.errors import StateError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.ids import (
    CommitSha,
    ContentSha256,
    RunId,
    TreeSha,
    commit_sha,
    content_sha256,
    run_id,
    tree_sha,
)

T = TypeVar("T")
VERSION_KEY = "version"

_ID_CHECKS: Mapping[object, Callable[[str], str]] = {
    CommitSha: commit_sha,
    TreeSha: tree_sha,
    ContentSha256: content_sha256,
    RunId: run_id,
}


class StateFileError(StateError):
    """A state file that cannot be read as its kind. `problem` says what is wrong without the path."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}; {fix}")
        self.path = path
        self.problem = problem
        self.fix = fix


class _Invalid(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


@dataclass(frozen=True)
class StateFile(Generic[T]):
    """One kind of state file: the model it holds and how to tell a user to repair it."""

    what: str  # how messages name it: "the series lock"
    model: type[T]
    version: int
    fix: str  # what the user does about a bad file: "run `mpspatch rebase --abort` to discard it"
    sort_keys: bool = True  # False: version first, then the fields in declaration order
    rebuildable: bool = False  # a cache: an unreadable file reads as absent and is written again

    def dumps(self, value: T) -> str:
        body = {VERSION_KEY: self.version, **_encode_object(type(value), value)}
        return json.dumps(body, indent=2, sort_keys=self.sort_keys) + "\n"

    def write(self, path: Path, value: T) -> None:
        atomic_write_text(path, self.dumps(value))

    def loads(self, path: Path, data: bytes | str) -> T:
        """The value `data` holds; StateFileError naming `path` when it is not one."""
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            raise self.error(path, f"{self.what} is not UTF-8 text") from None
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise self.error(path, f"{self.what} is not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise self.error(path, f"{self.what} is not a JSON object")
        if VERSION_KEY not in body:
            raise self.error(path, f"{self.what} has no `{VERSION_KEY}`")
        found = body.pop(VERSION_KEY)
        if found != self.version or isinstance(found, bool):
            raise self.error(path, f"{self.what} has version {_show(found)}; this mpspatch reads version "
                                   f"{self.version}")
        try:
            return cast(T, _decode_object(self.model, body, ""))
        except _Invalid as exc:
            raise self.error(path, f"{self.what} is not valid: {exc}") from None

    def read(self, path: Path) -> T | None:
        """The value in `path`, or None when there is no such file (or, for a cache, an unreadable one).

        Only a missing file counts as absent. A folder in its place is bad input (exit 2 naming it, with this
        kind's fix); other OS errors propagate as they are.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise self.error(path, "is a folder, not a file") from None
        try:
            return self.loads(path, data)
        except StateFileError:
            if self.rebuildable:
                return None
            raise

    def load(self, path: Path) -> T:
        """Like `read`, for a file that must exist."""
        value = self.read(path)
        if value is None:
            raise self.error(path, f"no {self.what.removeprefix('the ')} here")
        return value

    def error(self, path: Path, problem: str) -> StateFileError:
        return StateFileError(path, problem, self.fix)


# ------------------------------------------------------------------------------------------- encoding


def _encode_object(model: type[Any], value: object) -> dict[str, Any]:
    hints = _hints(model)
    return {f.name: _encode(hints[f.name], getattr(value, f.name)) for f in fields(model)}


def _encode(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    inner = _optional_arm(tp)
    if inner is not None:
        return _encode(inner, value)
    if isinstance(tp, type) and is_dataclass(tp):
        return _encode_object(tp, value)
    if get_origin(tp) is tuple:
        item = _repeated(tp)
        if item is None:
            return [_encode(arm, v) for arm, v in zip(get_args(tp), value, strict=True)]
        if _is_pair(item):
            value_type = get_args(item)[1]
            return {str(k): _encode(value_type, v) for k, v in value}
        return [_encode(item, v) for v in value]
    if isinstance(tp, NewType):
        return _encode(tp.__supertype__, value)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value).value  # a plain string of the vocabulary is accepted, anything else refused
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return value.as_posix()
    if tp in (str, int, float, bool):
        return value
    raise TypeError(f"the state store cannot encode {tp!r}")


# ------------------------------------------------------------------------------------------- decoding


def _decode_object(model: type[Any], raw: object, where: str) -> object:
    if not isinstance(raw, dict):
        raise _Invalid(where, f"expected an object, found {_kind(raw)}")
    hints = _hints(model)
    names = {f.name for f in fields(model)}
    unknown = sorted(k for k in raw if k not in names)
    if unknown:
        raise _Invalid(where, f"unknown key `{unknown[0]}`")
    values: dict[str, object] = {}
    for f in fields(model):
        if f.name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise _Invalid(where, f"missing key `{f.name}`")
            continue
        values[f.name] = _decode(hints[f.name], raw[f.name], _join(where, f.name))
    return model(**values)


def _decode(tp: Any, raw: object, where: str) -> object:
    inner = _optional_arm(tp)
    if inner is not None:
        return None if raw is None else _decode(inner, raw, where)
    if isinstance(tp, type) and is_dataclass(tp):
        return _decode_object(tp, raw, where)
    if get_origin(tp) is tuple:
        return _decode_tuple(tp, raw, where)
    if isinstance(tp, NewType):
        base = _decode(tp.__supertype__, raw, where)
        check = _ID_CHECKS.get(tp)
        if check is not None:
            try:
                return check(cast(str, base))
            except ValueError as exc:
                raise _Invalid(where, str(exc)) from None
        return base
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(raw)
        except (ValueError, TypeError):
            allowed = ", ".join(repr(m.value) for m in tp)
            raise _Invalid(where, f"{_show(raw)} is not one of {allowed}") from None
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return tp(cast(str, _expect(str, raw, where)))
    if tp is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        raise _Invalid(where, f"expected a number, found {_kind(raw)}")
    if tp in (str, int, bool):
        return _expect(tp, raw, where)
    raise TypeError(f"the state store cannot decode {tp!r}")


def _decode_tuple(tp: Any, raw: object, where: str) -> tuple[object, ...]:
    item = _repeated(tp)
    if item is not None and _is_pair(item):
        if not isinstance(raw, dict):
            raise _Invalid(where, f"expected an object, found {_kind(raw)}")
        value_type = get_args(item)[1]
        return tuple((key, _decode(value_type, v, _join(where, key))) for key, v in raw.items())
    if not isinstance(raw, list):
        raise _Invalid(where, f"expected a list, found {_kind(raw)}")
    if item is not None:
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(raw))
    arms = get_args(tp)
    if len(raw) != len(arms):
        raise _Invalid(where, f"expected a list of {len(arms)}, found {len(raw)} items")
    return tuple(_decode(arm, v, f"{where}[{i}]") for i, (arm, v) in enumerate(zip(arms, raw, strict=True)))


def _expect(tp: type[Any], raw: object, where: str) -> object:
    # bool is an int to Python, never to a state file.
    if isinstance(raw, tp) and (tp is bool or not isinstance(raw, bool)):
        return raw
    raise _Invalid(where, f"expected {_NAMES[tp]}, found {_kind(raw)}")


# ---------------------------------------------------------------------------------------------- types


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(model: type[Any]) -> dict[str, Any]:
    """The resolved field types of `model`, worked out once per class."""
    found = _HINTS.get(model)
    if found is None:
        if not (isinstance(model, type) and is_dataclass(model)):
            raise TypeError(f"the state store holds dataclasses, not {model!r}")
        if any(f.name == VERSION_KEY for f in fields(model)):
            raise TypeError(f"{model.__name__}: `{VERSION_KEY}` is the store's own key")
        found = _HINTS[model] = get_type_hints(model)
    return found


def _optional_arm(tp: Any) -> Any | None:
    """X for `X | None`, else None."""
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    arms = [a for a in get_args(tp) if a is not type(None)]
    if len(arms) != 1 or len(get_args(tp)) != 2:
        raise TypeError(f"the state store handles `X | None` unions only, not {tp!r}")
    return arms[0]


def _repeated(tp: Any) -> Any | None:
    """X for `tuple[X, ...]`, else None (a fixed-length tuple)."""
    args = get_args(tp)
    return args[0] if len(args) == 2 and args[1] is Ellipsis else None


def _is_pair(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[0] is str and args[1] is not Ellipsis


_NAMES: Mapping[type[Any], str] = {str: "a string", int: "an integer", bool: "true or false"}


def _kind(raw: object) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true or false"
    return {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}.get(
        type(raw), type(raw).__name__)


def _show(raw: object) -> str:
    text = json.dumps(raw) if isinstance(raw, str | int | float | bool | None) else _kind(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
