"""One run's inputs, parsed and validated once: the run specification.

The command line builds a `RunSpec` from its flags, every flow takes one (the Prefect UI renders it as a
form of typed fields with their descriptions), and `RunSpec.config` resolves the profile, its overrides and
the training length into one `Profile`, once per run. The parsers of the other run inputs live here too:
seeds ("0,1,2"), segment selections ("all", "latest", "0-3,7") and single `STAGE.KEY=VALUE` overrides.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cryptorl.config import DEFAULT_DATA_PATH, Profile, get_profile, renamed, with_overrides
from cryptorl.errors import ConfigError
from cryptorl.storage import ArtifactStore

# "default" is this machine's profile ($CRYPTORL_PROFILE, else smoke): a deployment run takes its worker's.
ProfileChoice = Literal["default", "smoke", "demo", "cpu", "gpu", "reference"]
SEGMENTS_SYNTAX = "all, latest, 3, 0-3 or 0,2,5"
_RANGE = re.compile(r"^(\d+)-(\d+)$")


class RunSpec(BaseModel):
    """What one run trains on and where it stores it (`cryptorl run/wfo/study`, and every flow's `spec`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: ProfileChoice = Field(
        "default",
        description="scale and training choices: smoke (CI), demo (make demo), cpu (one segment in <= 15 min on 2 "
        "cores), gpu (the original system's scale with the training levers), reference (the original system's exact "
        "configuration); default: this machine's $CRYPTORL_PROFILE, else smoke",
    )
    overrides: dict[str, str] = Field(
        default_factory=dict,
        description='config values replacing the profile\'s, {"STAGE.KEY": "VALUE"}, e.g. '
        '{"train.gamma": "0.9", "train.net_arch": "64,64"}',
    )
    timesteps: int = Field(0, ge=0, description="TQC training steps; 0 keeps the profile's")
    seeds: list[int] = Field(
        default_factory=list,
        description="random seeds trained, each its own cached run on the shared split; empty: the profile's seed",
    )
    data: str = Field("", description="OHLCV file or URL; empty: the bundled BTC/USDT 1h file")
    storage: str = Field(
        "", description="artifact store URL (file://, s3://, memory://); empty: $CRYPTORL_STORAGE, else ./artifacts"
    )
    clean: bool = Field(False, description="recompute every task, ignoring cached results")

    @field_validator("profile", mode="before")
    @classmethod
    def _profile_name(cls, value: Any) -> Any:
        return "default" if value is None else renamed("profile", value)

    @field_validator("overrides", mode="before")
    @classmethod
    def _overrides_as_text(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, (list, tuple)):  # ["STAGE.KEY=VALUE", ...], as the command line gives them
            return dict(parse_override(item) for item in value)
        if isinstance(value, dict):
            return {str(key).strip(): override_text(item, str(key)) for key, item in value.items()}
        return value

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, value: Any) -> Any:
        return [] if value is None or value == "" or value == [] else parse_seeds(value)

    @field_validator("timesteps", mode="before")
    @classmethod
    def _timesteps(cls, value: Any) -> Any:
        return 0 if value is None else value

    @field_validator("data", "storage", mode="before")
    @classmethod
    def _unset_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @classmethod
    def parse(cls, **inputs: Any) -> RunSpec:
        """The spec of these inputs, checked up front: any bad one is one `ConfigError` line."""
        try:
            spec = cls(**inputs)
        except ValidationError as exc:
            error = exc.errors()[0]
            cause = error.get("ctx", {}).get("error")
            if isinstance(cause, ConfigError):
                raise cause from None
            where = ".".join(str(part) for part in error["loc"])
            if error["type"] == "literal_error":
                raise ConfigError(
                    f"unknown {where} {error['input']!r}: use one of {error['ctx']['expected']}"
                ) from None
            raise ConfigError(f"run input {where}={error.get('input')!r}: {error['msg']}") from None
        spec.config  # noqa: B018  (resolving the profile checks every override)
        return spec

    @cached_property
    def config(self) -> Profile:
        """The profile, its overrides and the training length, resolved and validated (once per spec)."""
        name = None if self.profile == "default" else self.profile
        steps = {"train.total_timesteps": str(self.timesteps)} if self.timesteps else {}
        return with_overrides(get_profile(name), {**self.overrides, **steps})

    @property
    def data_source(self) -> str:
        return self.data or str(DEFAULT_DATA_PATH)

    @property
    def trained_seeds(self) -> list[int]:
        """The seeds a run trains: the spec's, else the profile's own."""
        return list(self.seeds) or [self.config.seed]

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.storage or None)

    def with_changes(self, **changes: Any) -> RunSpec:
        """A copy with some inputs replaced (validated like the original)."""
        return RunSpec.parse(**{**self.model_dump(), **changes})


def pinned_profile(spec: RunSpec) -> RunSpec:
    """The spec with "default" replaced by the profile it resolves to on this machine (the resolved config kept):
    a parent run hands every child run the same profile, whatever the child's machine defaults to."""
    return spec if spec.profile != "default" else spec.model_copy(update={"profile": spec.config.name})


def parse_override(item: str) -> tuple[str, str]:
    """`STAGE.KEY=VALUE` -> (key, value), both stripped; the value is parsed by `with_overrides`."""
    key, sep, value = str(item).partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not STAGE.KEY=VALUE: write e.g. regime.n_states=4")
    return key.strip(), value.strip()


def override_text(value: Any, key: str) -> str:
    """A JSON value (from a grid file or the UI) as the text `with_overrides` parses."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(item, (int, float, str)) for item in value):
        return ",".join(str(item) for item in value)
    raise ConfigError(f'override {key}={value!r}: write a string, number or boolean (a tuple as "64,64")')


def parse_seeds(spec: str | int | list[int] | tuple[int, ...]) -> list[int]:
    """Seeds from "0,1,2" (or a list): distinct non-negative integers, in the order given."""
    items = spec if isinstance(spec, (list, tuple)) else str(spec).split(",")
    try:
        seeds = [int(str(item).strip()) for item in items]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"seeds {spec!r}: write comma-separated non-negative integers, e.g. 0,1,2")
    return list(dict.fromkeys(seeds))


def select_segments(spec: str | int | list[int], available: int) -> list[int]:
    """Segment numbers of `spec` among `available`: "all", "latest", "3", "0-3", "0,2,5" (combinable: "0-3,7")."""
    if available == 0:
        raise ConfigError(
            "the data holds no complete segment with this WFO config; "
            "add data or shorten wfo.train / wfo.eval / wfo.test"
        )
    text = str(spec).strip()
    if isinstance(spec, (list, tuple)):
        numbers = [int(n) for n in spec]
    elif text == "all":
        numbers = list(range(available))
    elif text == "latest":
        numbers = [available - 1]
    else:
        numbers = [n for part in text.split(",") for n in _segment_part(part.strip(), spec)]
    outside = [n for n in numbers if not 0 <= n < available]
    if outside:
        raise ConfigError(
            f"segments {spec!r}: segment {outside[0]} does not exist (the data holds "
            f"0..{available - 1}); fix: pick segments in that range, or add data"
        )
    return sorted(set(numbers))


def _segment_part(part: str, spec: Any) -> list[int]:
    if part.isdigit():
        return [int(part)]
    match = _RANGE.match(part)
    if not match or int(match[1]) > int(match[2]):
        raise ConfigError(f"segments {spec!r}: cannot read {part!r}; write e.g. {SEGMENTS_SYNTAX}")
    return list(range(int(match[1]), int(match[2]) + 1))
