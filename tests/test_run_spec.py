"""The run specification: one parser of a run's inputs (overrides typed by each field's annotation, seeds,
segment selections), checked before any Prefect server starts, and a self-describing form for the UI."""

import json
import subprocess
import sys
import typing

import pytest

from cryptorl.config import PROFILES
from cryptorl.errors import ConfigError
from cryptorl.run_spec import ProfileChoice, RunSpec, parse_seeds, pinned_profile, select_segments


def test_overrides_are_stripped_and_typed_by_the_annotation():
    spec = RunSpec.parse(profile="smoke", overrides=["train.gamma = 0.9", "train.net_arch=32,32", "wfo.eval=500",
                                                     "wfo.test=1M", "promotion.floor=none", "train.use_sde=true"])
    train = spec.config.train
    assert train.gamma == 0.9 and train.net_arch == (32, 32) and train.use_sde is True
    assert spec.config.wfo.eval == 500 and spec.config.wfo.test == "1M"  # int | str: bars, else a calendar span
    assert spec.config.promotion.floor == ()


@pytest.mark.parametrize("inputs, message", [
    ({"overrides": ["train.net_arch=a,b"]}, r"invalid value for train.net_arch: 'a,b' is not a comma-separated list "
                                            r"of int"),
    ({"overrides": ["train.head=pooled"]}, r"'pooled' is not one of 'flatten', 'attention_pool', 'mean_pool'"),
    ({"overrides": ["train.gama=0.9"]}, r"unknown config key 'train.gama': train has total_timesteps"),
    ({"overrides": ["train.gamma"]}, r"override 'train.gamma' is not STAGE.KEY=VALUE"),
    ({"profile": "huge"}, r"unknown profile 'huge': use one of 'default', 'smoke'"),
    ({"seeds": "0,x"}, r"seeds '0,x': write comma-separated non-negative integers"),
    ({"timesteps": -5}, r"run input timesteps=-5: Input should be greater than or equal to 0"),
])
def test_bad_inputs_are_one_config_error(inputs, message):
    with pytest.raises(ConfigError, match=message):
        RunSpec.parse(**inputs)


def test_the_spec_resolves_its_profile_once_and_keeps_it_when_pinned(monkeypatch):
    monkeypatch.setenv("CRYPTORL_PROFILE", "cpu")
    spec = RunSpec.parse(timesteps=4096, seeds="2,1")
    assert spec.config.name == "cpu" and spec.config.train.total_timesteps == 4096 and spec.trained_seeds == [2, 1]
    pinned = pinned_profile(spec)  # what a parent flow hands its children: the profile it resolved
    assert pinned.profile == "cpu" and pinned.config is spec.config
    assert RunSpec.parse(**json.loads(pinned.model_dump_json())).config == spec.config  # a deployment's JSON


def test_every_default_survives_a_round_trip_through_json():
    """What a parent flow sends a deployment run: the spec's JSON, empty seeds and data included."""
    assert RunSpec.parse(**json.loads(RunSpec().model_dump_json())) == RunSpec()


def test_the_old_profile_and_head_names_still_work_with_one_note():
    with pytest.warns(FutureWarning, match="profile 'seed' is now called 'reference'"):
        spec = RunSpec.parse(profile="seed")
    assert spec.profile == "reference" and spec.config == PROFILES["reference"]
    with pytest.warns(FutureWarning, match="train.head 'seed' is now called 'flatten'"):
        assert RunSpec.parse(overrides=["train.head=seed"]).config.train.head == "flatten"


def test_the_form_lists_every_profile_and_describes_every_field():
    assert set(typing.get_args(ProfileChoice)) == {"default", *PROFILES}
    schema = RunSpec.model_json_schema()
    assert schema["properties"]["profile"]["enum"] == list(typing.get_args(ProfileChoice))
    assert all(field.get("description") for field in schema["properties"].values())
    assert not any("anyOf" in field for field in schema["properties"].values())  # no "str / None" toggles


def test_an_unknown_key_is_refused_before_prefect_is_even_imported(tmp_path):
    code = ("import sys\nfrom cli.main import main\n"
            "code = main(['run', '--set', 'train.gama=0.9', '--storage', sys.argv[1]])\n"
            "print(code, any(name.split('.')[0] in ('prefect', 'flows') for name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, f"file://{tmp_path}"], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()] and "cryptorl: error: unknown config key 'train.gama'" in result.stderr


@pytest.mark.parametrize("selection, expected", [
    ("all", [0, 1, 2, 3]), ("latest", [3]), ("2", [2]), ("0-2", [0, 1, 2]), ("3,0-1", [0, 1, 3]), ([3, 1], [1, 3]),
])
def test_select_segments(selection, expected):
    assert select_segments(selection, available=4) == expected


@pytest.mark.parametrize("selection, available, message", [
    ("0-9", 4, r"segment 4 does not exist \(the data holds 0..3\)"),
    ("3-1", 4, "cannot read '3-1'"),
    ("first", 4, "write e.g. all, latest, 3, 0-3 or 0,2,5"),
    ("all", 0, "the data holds no complete segment"),
])
def test_select_segments_refuses_bad_selections(selection, available, message):
    with pytest.raises(ConfigError, match=message):
        select_segments(selection, available)


@pytest.mark.parametrize("seeds, expected", [("0", [0]), ("0,1", [0, 1]), (" 3, 1,3", [3, 1]), ([2, 0], [2, 0]),
                                             (7, [7])])
def test_parse_seeds(seeds, expected):
    assert parse_seeds(seeds) == expected


@pytest.mark.parametrize("seeds", ["", "0-3", "a", "0,-1"])
def test_bad_seeds(seeds):
    with pytest.raises(ConfigError, match="write comma-separated non-negative integers, e.g. 0,1,2"):
        parse_seeds(seeds)
