"""Runner pieces: cache keys, secret redaction, and the stage kinds the runner asks instead of branching."""

from __future__ import annotations

from mpspatch.foundation.config import Requires, Stage, StageKind
from mpspatch.verify.machine import Machine
from mpspatch.verify.runner import cache_key, redact
from mpspatch.verify.stages.kinds import KINDS, kind_of


def stage(**kw: object) -> Stage:
    values: dict[str, object] = {"name": "s", "kind": "command", "run": (("true",),)}
    values.update(kw)
    return Stage(**values)  # type: ignore[arg-type]


def test_cache_key_covers_the_inputs() -> None:
    machine = Machine("linux", "x86_64")
    tools = (("git", "git version 2.39.5"), ("torch", "2.9.1"))
    base = dict(series=["a" * 64], base="b" * 40, tree="c" * 40, tools=tools, machine=machine)
    key = cache_key(stage(), **base)  # type: ignore[arg-type]
    assert key == cache_key(stage(), **base)  # type: ignore[arg-type]
    changed = [
        cache_key(stage(run=(("false",),)), **base),  # type: ignore[arg-type]
        cache_key(stage(env=(("A", "1"),)), **base),  # type: ignore[arg-type]
        cache_key(stage(timeout=5.0), **base),  # type: ignore[arg-type]
        cache_key(stage(requires=Requires(os="darwin")), **base),  # type: ignore[arg-type]
        cache_key(stage(min_tests=3), **base),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "series": ["d" * 64]}),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "base": "e" * 40}),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "tools": (("git", "git version 2.40.0"), ("torch", "2.9.1"))}),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "machine": Machine("darwin", "arm64")}),  # type: ignore[arg-type]
    ]
    assert key not in changed and len(set(changed)) == len(changed)
    # The build produces torch, so torch's version is not an input of a build stage's key.
    build = stage(kind="build")
    assert cache_key(build, **base) == cache_key(  # type: ignore[arg-type]
        build, **{**base, "tools": (("git", "git version 2.39.5"), ("torch", "2.10.0"))}  # type: ignore[arg-type]
    )


def test_redact_hides_secret_looking_keys() -> None:
    env = (("GITHUB_TOKEN", "ghp_x"), ("AWS_SECRET_ACCESS_KEY", "s"), ("DB_PASSWORD", "p"), ("API_KEY", "k"),
           ("GOOGLE_APPLICATION_CREDENTIALS", "c"), ("MAX_JOBS", "3"), ("TSAN_OPTIONS", "halt_on_error=0"))
    assert redact(env) == (("GITHUB_TOKEN", "***"), ("AWS_SECRET_ACCESS_KEY", "***"), ("DB_PASSWORD", "***"),
                           ("API_KEY", "***"), ("GOOGLE_APPLICATION_CREDENTIALS", "***"), ("MAX_JOBS", "3"),
                           ("TSAN_OPTIONS", "halt_on_error=0"))


def test_every_stage_kind_is_registered() -> None:
    assert set(KINDS) == set(StageKind)
    assert all(k.name == name for name, k in KINDS.items())
    assert kind_of("lint").scrub_line is not None and kind_of("lint").lint
    assert [k.name for k in KINDS.values() if k.installs_torch] == [StageKind.BUILD]
