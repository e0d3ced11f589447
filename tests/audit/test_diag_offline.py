"""Diagnostics that need no policy: entropy vs reward, TensorBoard scalars, HMM regimes, MAE reconstruction."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from torch.utils.tensorboard import SummaryWriter

from cryptorl.audit.diagnostics import entropy_diagnostics, hmm_diagnostics, mae_diagnostics, read_scalar_trajectory
from cryptorl.errors import ArtifactNotFoundError, DataError
from cryptorl.models.foundation import valid_window_ends
from cryptorl.regime import CONTEXT_COLUMNS
from tests.tiny import tiny_encoder

REWARD = {"mean": 0.001, "std": 0.01, "min": -0.05, "max": 0.04}


def test_entropy_bonus_against_the_reward_spread():
    result = entropy_diagnostics([0.5, 0.2, 0.05], final_ent_coef=0.05, reward_stats=REWARD, policy_entropy=-2.0)
    assert (result.ent_coef_first, result.ent_coef_min, result.ent_coef_max, result.n_points) == (0.5, 0.05, 0.5, 3)
    assert result.entropy_scale == 2.0 and result.bonus_scale == pytest.approx(0.1)
    assert result.bonus_to_reward_std == pytest.approx(10.0) and result.entropy_dominates
    assert json.loads(json.dumps(dataclasses.asdict(result)))["reward"] == REWARD


def test_entropy_diagnostics_without_a_trajectory_or_a_reward_spread():
    result = entropy_diagnostics(None, final_ent_coef=0.001, reward_stats=REWARD)
    assert result.n_points == 0 and result.ent_coef_first == result.ent_coef_min == 0.001
    assert result.entropy_scale == 1.0 and result.bonus_to_reward_std == pytest.approx(0.1)  # |target entropy| = 1
    assert not result.entropy_dominates
    flat = entropy_diagnostics(None, final_ent_coef=0.5, reward_stats={**REWARD, "std": 0.0})
    assert flat.bonus_to_reward_std == 0.0 and not flat.entropy_dominates


def test_scalar_trajectory_merges_runs_by_step(tmp_path):
    for run, points in (("tqc_1", {0: 0.5, 1: 0.4, 2: 0.3}), ("tqc_2", {2: 0.25, 3: 0.2})):
        writer = SummaryWriter(str(tmp_path / run))
        for step, value in points.items():
            writer.add_scalar("train/ent_coef", value, step)
            writer.add_scalar("train/actor_loss", -value, step)
        writer.close()
    series = read_scalar_trajectory(tmp_path, "train/ent_coef")
    assert series.tag == "train/ent_coef" and series.steps == [0, 1, 2, 3]
    assert series.values == pytest.approx([0.5, 0.4, 0.25, 0.2])  # the later run wins step 2
    with pytest.raises(ArtifactNotFoundError, match=r"no scalar 'train/ent_coeff'.*train/actor_loss, train/ent_coef"):
        read_scalar_trajectory(tmp_path, "train/ent_coeff")


def test_scalar_trajectory_needs_event_files(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="no TensorBoard event files under"):
        read_scalar_trajectory(tmp_path, "train/ent_coef")


def hand_made_context():
    """2 warm-up rows, then argmax states 0 0 0 1 1 2 2 2 2 0 (runs 3, 2, 4, 1) at probability 0.7."""
    states = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
    probs = np.full((len(states), 4), 0.1)
    probs[np.arange(len(states)), states] = 0.7
    values = np.column_stack([probs, np.full(len(states), 0.6)])  # regime_entropy 0.6
    values = np.vstack([np.full((2, 5), np.nan), values])
    returns = np.array([0.0, 0.0, 0.01, 0.03, 0.02, -0.01, -0.03, 0.0, 0.0, 0.0, 0.04, 0.06])
    return pd.DataFrame(values, columns=list(CONTEXT_COLUMNS)), returns


def test_hmm_diagnostics_on_a_hand_made_sequence():
    result = hmm_diagnostics(*hand_made_context())
    assert result.n_bars == 10 and result.n_switches == 3
    assert result.occupancy_argmax == pytest.approx([0.4, 0.2, 0.4, 0.0])
    assert result.occupancy_prob == pytest.approx([0.4 * 0.7 + 0.6 * 0.1, 0.2 * 0.7 + 0.8 * 0.1, 0.34, 0.1])
    assert result.mean_run_length == 2.5 and result.run_length_by_state == [2.0, 2.0, 4.0, 0.0]
    assert result.return_mean_by_state == pytest.approx([0.03, -0.02, 0.01, 0.0])  # state 0: 0.01 0.03 0.02 0.06
    assert result.return_vol_by_state == pytest.approx([np.std([0.01, 0.03, 0.02, 0.06]), 0.01,
                                                        np.std([0.0, 0.0, 0.0, 0.04]), 0.0])
    assert result.entropy_mean == pytest.approx(0.6)
    json.dumps(dataclasses.asdict(result))


def test_hmm_diagnostics_refuse_mismatched_inputs():
    context, returns = hand_made_context()
    with pytest.raises(DataError, match=r"lacks columns \['regime_entropy'\]"):
        hmm_diagnostics(context.drop(columns="regime_entropy"), returns)
    with pytest.raises(DataError, match="log_returns has shape \\(11,\\) but context has 12 rows"):
        hmm_diagnostics(context, returns[1:])


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder()


def test_mae_diagnostics_score_every_valid_test_window(encoder):
    features = np.random.default_rng(0).standard_normal((200, 50))
    features[100] = np.nan  # windows covering this bar are left out
    result = mae_diagnostics(encoder, features, seed=0)
    assert result.n_windows == len(valid_window_ends(features, 64)) == 200 - 64 + 1 - 64
    assert result.loss > 0 and result.baseline_loss > 0
    assert result.loss_to_baseline == pytest.approx(result.loss / result.baseline_loss)
    assert mae_diagnostics(encoder, features, seed=0) == result  # the mask is seeded
    assert mae_diagnostics(encoder, features, seed=1).baseline_loss != result.baseline_loss


def test_mae_diagnostics_refuse_the_wrong_columns(encoder):
    with pytest.raises(DataError, match=r"shape \(200, 55\), expected \(T, 50\)"):
        mae_diagnostics(encoder, np.zeros((200, 55)), seed=0)
    with pytest.raises(DataError, match="no 64 consecutive rows without NaN"):
        mae_diagnostics(encoder, np.zeros((50, 50)), seed=0)
