"""The one parser of `STAGE.KEY=VALUE` overrides: text parsed as each field's annotated type, then validated."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from cryptorl.config.checks import renamed
from cryptorl.config.stages import STAGE_NAMES, Profile
from cryptorl.errors import ConfigError


def with_overrides(profile: Profile, overrides: Mapping[str, object]) -> Profile:
    """Apply `stage.key=value` overrides (text parsed as the field's annotated type), then validate.

    Keys and text values are stripped, so `train.gamma = 0.9` reads as `train.gamma=0.9`; this is the one
    parser of overrides (the CLI's `--set`, a study's settings and a flow's `overrides` all come here).
    """
    for dotted, raw in overrides.items():
        profile = _override_one(profile, str(dotted).strip(), raw)
    return profile.validate()


def _override_one(profile: Profile, dotted: str, raw: object) -> Profile:
    stage_name, _, key = dotted.partition(".")
    stage = getattr(profile, stage_name, None) if stage_name in STAGE_NAMES else None
    if not key or stage is None:
        raise ConfigError(
            f"unknown config key {dotted!r}: use STAGE.KEY=VALUE with STAGE one of {', '.join(STAGE_NAMES)}"
        )
    hints = typing.get_type_hints(type(stage))
    if key not in hints or key not in {f.name for f in dataclasses.fields(stage)}:
        raise ConfigError(
            f"unknown config key {dotted!r}: {stage_name} has {', '.join(f.name for f in dataclasses.fields(stage))}"
        )
    value = parse_typed(renamed(dotted, str(raw).strip()), hints[key], dotted)
    return dataclasses.replace(profile, **{stage_name: dataclasses.replace(stage, **{key: value})})


def parse_typed(raw: str, hint: Any, dotted: str) -> Any:
    """`raw` as a value of the annotation `hint`: bool, int, float, str, a Literal, a union of these (first
    match wins, so `int | str` reads "500" as 500 and "24M" as text) or a tuple of one of them ("64,64")."""
    try:
        return _parse_as(raw, hint)
    except ValueError:
        raise ConfigError(f"invalid value for {dotted}: {raw!r} is not {_type_name(hint)}") from None


def _parse_as(raw: str, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _parse_as(raw, option)
            except ValueError:
                continue
        raise ValueError(raw)
    if origin is typing.Literal:
        if raw not in args:
            raise ValueError(raw)
        return raw
    if origin is tuple:  # "none" (or nothing) is the empty tuple
        items = [] if raw.lower() in ("", "none") else [part.strip() for part in raw.split(",") if part.strip()]
        return tuple(_parse_as(item, args[0]) for item in items)
    if hint is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(raw)
        return raw.lower() in ("true", "1")
    if hint in (int, float, str):
        return hint(raw)
    raise TypeError(f"no override parser for {hint!r}")  # a config field of a type this parser lacks: a bug


def _type_name(hint: Any) -> str:
    """How an annotation reads in an error: "an int", "one of 'diag', 'full'", "a tuple of int"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(option) for option in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(option) for option in args)
    if origin is tuple:
        return f"a comma-separated list of {args[0].__name__}"
    return {int: "an int", float: "a float", bool: "true or false", str: "text"}.get(hint, repr(hint))
