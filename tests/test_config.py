import dataclasses

import pytest

from cryptorl.config import PROFILES, STAGE_NAMES, get_profile, with_overrides
from cryptorl.errors import ConfigError


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", "demo"])
def test_profiles_exist_and_validate(name):
    assert get_profile(name).name == name


def test_unknown_profile_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown profile 'fast': use one of smoke, cpu, gpu, demo, reference"):
        get_profile("fast")


def test_overrides_are_parsed_as_the_field_type():
    profile = with_overrides(get_profile("smoke"), {"regime.n_iter": "30", "features.scaler_clip": "4",
                                                    "regime.columns": "ret_1, rv_24", "wfo.train": "2000"})
    assert profile.regime.n_iter == 30 and profile.features.scaler_clip == 4.0
    assert profile.regime.columns == ("ret_1", "rv_24") and profile.wfo.train == 2000  # int | str: bars
    assert PROFILES["smoke"].regime.n_iter == 50  # profiles themselves are never mutated


@pytest.mark.parametrize("key, value, message", [
    ("regime.n_state", "3", r"unknown config key 'regime.n_state': regime has n_states"),
    ("mystery.x", "1", r"unknown config key 'mystery.x': use STAGE.KEY=VALUE"),
    ("regime.n_states", "three", r"invalid value for regime.n_states: 'three' is not an int"),
    ("regime.n_states", "1", r"invalid config regime.n_states=1: .* use 4"),
    ("data.max_gap_fill_bars", "-1", r"invalid config data.max_gap_fill_bars=-1"),
])
def test_bad_overrides_name_the_key_and_fix(key, value, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(get_profile("smoke"), {key: value})


# What a profile may change: how much data, compute and model capacity, never what is computed or rewarded.
SCALE_FIELDS = frozenset({
    "name", "wfo.train", "wfo.eval", "wfo.test", "wfo.step", "regime.n_inits", "regime.n_iter",
    "mae.d_model", "mae.n_heads", "mae.n_layers", "mae.dim_feedforward", "mae.dropout", "mae.lr", "mae.batch_size",
    "mae.max_epochs", "mae.patience", "mae.steps_per_epoch", "env.episode_length", "train.total_timesteps",
    "train.n_envs", "train.batch_size", "train.replay_ratio", "train.learning_starts", "train.buffer_size",
    "train.net_arch", "train.features_dim", "train.checkpoints", "train.eval_steps", "train.log_every_steps",
})


def config_leaves(config, prefix: str = "") -> dict[str, object]:
    """Every leaf value of a nested config dataclass, by dotted name (`env.fee`)."""
    leaves = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            leaves.update(config_leaves(value, f"{prefix}{field.name}."))
        else:
            leaves[f"{prefix}{field.name}"] = value
    return leaves


@pytest.mark.parametrize("name", ["smoke", "cpu", "demo"])
def test_profiles_differ_in_scale_only(name):
    small, gpu = config_leaves(get_profile(name)), config_leaves(get_profile("gpu"))
    assert small.keys() == gpu.keys()
    differing = {key for key in gpu if small[key] != gpu[key]}
    assert differing, f"{name} is the gpu profile"
    assert differing <= SCALE_FIELDS, f"{name} changes more than scale: {sorted(differing - SCALE_FIELDS)}"


def test_the_default_profile_is_the_machines(monkeypatch):
    monkeypatch.delenv("CRYPTORL_PROFILE", raising=False)
    assert get_profile().name == get_profile(None).name == "smoke"  # a laptop never defaults to the GPU scale
    monkeypatch.setenv("CRYPTORL_PROFILE", "gpu")  # what worker.env sets on the GPU server
    assert get_profile().name == "gpu"
    assert get_profile("cpu").name == "cpu"  # a run's own profile always wins
    monkeypatch.setenv("CRYPTORL_PROFILE", "huge")
    with pytest.raises(ConfigError, match=r"unknown profile 'huge' \(from \$CRYPTORL_PROFILE\): use one of smoke"):
        get_profile()


# Fields whose every value of their type is meaningful (nothing to refuse), and why.
FREE_FIELDS = {
    "train.target_entropy": "any real number (SB3's 'auto' for a 1-D action is -1)",
    "train.log_std_init": "any real number (the log of gSDE's initial noise scale)",
}
WRONG_CANDIDATES = {int: (-1, 0, 10**12), float: (-1.0, 0.0, 2.5, 1e12), str: ("", "nonsense"),
                    tuple: ((), ("nonsense",), (0,))}


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_field_is_validated_or_cannot_be_wrong(stage):
    """Each field either refuses some value of its type in one ConfigError, is a bool, or is listed as free."""
    config = get_profile("smoke")
    unchecked = []
    for field in dataclasses.fields(getattr(config, stage)):
        key, value = f"{stage}.{field.name}", getattr(getattr(config, stage), field.name)
        if isinstance(value, bool) or key in FREE_FIELDS:
            continue
        candidates = [c for kind, values in WRONG_CANDIDATES.items() if isinstance(value, kind) for c in values]
        if not any(_refused(config, stage, field.name, candidate) for candidate in candidates):
            unchecked.append(key)
    assert unchecked == []


def _refused(config, stage: str, name: str, value) -> bool:
    try:
        dataclasses.replace(config, **{stage: dataclasses.replace(getattr(config, stage), **{name: value})}).validate()
    except ConfigError:
        return True
    return False
