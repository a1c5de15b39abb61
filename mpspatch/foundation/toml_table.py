"""One TOML table of the config being read: typed getters whose mistakes are one exit-2 line naming the file,
the key and a fix, and leftover keys named as typos (with the closest known key)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from mpspatch.foundation.errors import ConfigError

T = TypeVar("T")


class Table:
    """One TOML table being read: tracks which keys were consumed so leftovers can be named as typos."""

    def __init__(self, file: Path, name: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
        self.file, self.name, self.data = file, name, data
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                fix = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(known)}"
                raise ConfigError(f"{file}: [{name}] has unknown key {key!r}; {fix}")

    def fail(self, key: str, problem: str, example: str) -> ConfigError:
        return ConfigError(f"{self.file}: [{self.name}].{key} {problem}; fix: {example}")

    def get(self, key: str, kind: type[T], example: str, default: T | None = None) -> T:
        if key not in self.data:
            if default is None:
                raise self.fail(key, "is missing", example)
            return default
        value = self.data[key]
        # bool is an int subclass in Python; a TOML `true` where a number belongs is still a mistake.
        wrong_bool = isinstance(value, bool) and kind is not bool
        if wrong_bool or not isinstance(value, kind):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)  # type: ignore[return-value]
            raise self.fail(key, f"must be {kind_name(kind)}, not {kind_name(type(value))}", example)
        return value

    def optional(self, key: str, kind: type[T], example: str) -> T | None:
        if key not in self.data:
            return None
        return self.get(key, kind, example)

    def strings(self, key: str, example: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        if key not in self.data and default is not None:
            return default
        items = self.get(key, list, example)
        if not all(isinstance(item, str) for item in items):
            raise self.fail(key, "must be a list of strings", example)
        return tuple(items)

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table", f"[{self.name}.{key}]")
        return value


def kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
            dict: "a table"}.get(kind, kind.__name__)


def toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
