"""Typed configuration per pipeline stage, the profiles, and the one parser of overrides.

Each stage reads one frozen dataclass (`stages.py`, `train.py`); a `Profile` bundles them. Configs are
validated up front (`validate()`), one rule per check (`checks.py`), and each error names the key and the fix.
Profiles (`profiles.py`) are written as overrides of the defaults, parsed by `overrides.py` as each field's
annotated type. Profiles differ in scale only, except `reference`, the original system's own choices.
"""

from cryptorl.config.checks import DEPRECATED_NAMES, SPAN_PATTERN, renamed
from cryptorl.config.overrides import parse_typed, with_overrides
from cryptorl.config.profiles import (
    DEFAULT_PROFILE,
    PROFILE_ENV_VAR,
    PROFILE_OVERRIDES,
    PROFILES,
    REFERENCE_TRAINING,
    get_profile,
)
from cryptorl.config.stages import (
    DEFAULT_DATA_PATH,
    FLOOR_BASELINES,
    OBSERVATION_WINDOW,
    PROJECT_ROOT,
    STAGE_CLASSES,
    STAGE_NAMES,
    TRAINING_STAGES,
    DataConfig,
    EnvConfig,
    FeatureConfig,
    MAEConfig,
    Profile,
    PromotionConfig,
    RegimeConfig,
    SignalConfig,
    WFOConfig,
    check_w_cost_range,
)
from cryptorl.config.train import TrainConfig

__all__ = [
    "DEFAULT_DATA_PATH",
    "DEFAULT_PROFILE",
    "DEPRECATED_NAMES",
    "FLOOR_BASELINES",
    "OBSERVATION_WINDOW",
    "PROFILES",
    "PROFILE_ENV_VAR",
    "PROFILE_OVERRIDES",
    "PROJECT_ROOT",
    "REFERENCE_TRAINING",
    "SPAN_PATTERN",
    "STAGE_CLASSES",
    "STAGE_NAMES",
    "TRAINING_STAGES",
    "DataConfig",
    "EnvConfig",
    "FeatureConfig",
    "MAEConfig",
    "Profile",
    "PromotionConfig",
    "RegimeConfig",
    "SignalConfig",
    "TrainConfig",
    "WFOConfig",
    "check_w_cost_range",
    "get_profile",
    "parse_typed",
    "renamed",
    "with_overrides",
]
