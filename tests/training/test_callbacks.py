import json
import math
import zipfile

import numpy as np
import pytest
import torch
from sb3_contrib import TQC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import DummyVecEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cryptorl.envs import BatchCryptoEnv, CryptoTradingEnv, EnvConfig, MarketData
from cryptorl.errors import CheckpointError, ConfigError
from cryptorl.training import CompactReplayBuffer
from cryptorl.training.callbacks import (
    ROLLOUT_METRICS,
    EntropyFloorCallback,
    MORLCurriculumCallback,
    RotatingCheckpointCallback,
    UnifiedMetricsCallback,
    current_ent_coef,
    latest_checkpoint,
    learn_until,
    list_checkpoints,
    make_callbacks,
    restore_checkpoint,
    resume_or_create,
    w_cost_range_at,
)

CONFIG = EnvConfig(episode_length=8, no_trade_band=0.0)  # identity execution: the positions are the actions
N_ENVS = 4


@pytest.fixture(scope="module")
def market() -> MarketData:
    return MarketData.random(160, n_features=6, seed=5)


def _env(market: MarketData, seed: int = 0, **kwargs) -> BatchCryptoEnv:
    return BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True, seed=seed, **kwargs)


def _tqc(env: BatchCryptoEnv, net_arch=(16, 16), **kwargs) -> TQC:
    """The seed's TQC settings (auto ent_coef, gSDE, gamma 0.95) at toy scale, with the compact buffer."""
    settings = {"ent_coef": "auto_0.5", "learning_starts": 16, **kwargs}
    return TQC("MultiInputPolicy", env, replay_buffer_class=CompactReplayBuffer,
               replay_buffer_kwargs={"market": env.market}, buffer_size=1000, batch_size=16, gamma=0.95,
               use_sde=True, sde_sample_freq=4,
               policy_kwargs={"net_arch": list(net_arch), "n_quantiles": 5, "log_std_init": 0.0},
               seed=0, device="cpu", **settings)


class _StopAt(BaseCallback):
    """Ends training at `num_timesteps >= stop` (a 'crash' or a mid-training inspection point)."""

    def __init__(self, stop: int):
        super().__init__()
        self.stop = stop

    def _on_step(self) -> bool:
        return self.num_timesteps < self.stop


class _Capture(KVWriter):
    """An SB3 logger output that keeps every dump in memory."""

    def __init__(self):
        self.dumps: list[tuple[int, dict]] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append((step, dict(key_values)))


# --- EntropyFloorCallback --------------------------------------------------------------------------------

def test_entropy_floor_clamps_the_learned_coefficient(market):
    model = _tqc(_env(market))
    floor = EntropyFloorCallback(min_ent_coef=0.01)
    model.log_ent_coef.data.fill_(math.log(1e-4))
    floor.init_callback(model)
    floor.on_rollout_start()
    assert model.log_ent_coef.item() == pytest.approx(math.log(0.01), abs=1e-6)

    model.log_ent_coef.data.fill_(math.log(1e-4))  # and through a real learn with updates
    optimizer_tensor = model.ent_coef_optimizer.param_groups[0]["params"][0]
    model.learn(64, callback=floor)
    assert model._n_updates > 0
    assert current_ent_coef(model) >= 0.01 * (1 - 1e-6)
    assert optimizer_tensor is model.log_ent_coef  # clamped in place: the optimizer still trains it


def test_entropy_floor_leaves_a_fixed_coefficient_and_refuses_one_below_the_floor(market):
    model = _tqc(_env(market), ent_coef=0.05)
    model.learn(16, callback=EntropyFloorCallback(0.01))
    assert current_ent_coef(model) == pytest.approx(0.05)
    with pytest.raises(ConfigError, match=r"fixed ent_coef=0.001 is below EntropyFloorCallback min_ent_coef=0.01"):
        _tqc(_env(market), ent_coef=0.001).learn(16, callback=EntropyFloorCallback(0.01))


@pytest.mark.parametrize("floor", [0.0, -0.1])
def test_entropy_floor_must_be_positive(floor):
    with pytest.raises(ConfigError, match=r"min_ent_coef=.*use a positive floor"):
        EntropyFloorCallback(floor)


# --- MORLCurriculumCallback ------------------------------------------------------------------------------

@pytest.mark.parametrize("progress, expected", [
    (0.0, (0.0, 0.0)), (0.1, (0.0, 0.0)), (0.25, (0.25, 0.75)), (0.4, (0.5, 1.5)), (0.7, (1.0, 3.0)), (1.0, (1.0, 3.0)),
])
def test_w_cost_range_is_held_then_linear_then_held(progress, expected):
    low, high = w_cost_range_at(progress, (0.0, 0.0), (1.0, 3.0), warmup_fraction=0.1, ramp_fraction=0.6)
    assert (low, high) == pytest.approx(expected)


def test_w_cost_range_with_no_ramp_is_a_step():
    assert w_cost_range_at(0.49, (0.0, 0.0), (0.0, 2.0), 0.5, 0.0) == (0.0, 0.0)
    assert w_cost_range_at(0.5, (0.0, 0.0), (0.0, 2.0), 0.5, 0.0) == (0.0, 2.0)


def test_curriculum_sets_the_env_range_for_the_training_progress(market):
    env = _env(market)
    calls = []
    set_range = env.set_w_cost_range
    env.set_w_cost_range = lambda low, high: (calls.append((low, high)), set_range(low, high))
    curriculum = MORLCurriculumCallback((0.0, 0.0), (0.0, 2.0), warmup_fraction=0.1, ramp_fraction=0.6,
                                        update_every=0.1)
    model = _tqc(env)
    model.learn(200, callback=CallbackList([curriculum, _StopAt(80)]))  # stopped at progress 0.4
    assert model.num_timesteps == 80
    assert (env.w_cost_low, env.w_cost_high) == pytest.approx(w_cost_range_at(0.4, (0.0, 0.0), (0.0, 2.0), 0.1, 0.6))
    assert env.w_cost_high == pytest.approx(1.0)
    # 20 steps, but the range is re-evaluated once per 10 % of progress and pushed only when it changed.
    assert 1 < len(calls) <= 5 and len(set(calls)) == len(calls)


@pytest.mark.parametrize("kwargs, message", [
    ({"warmup_fraction": -0.1}, r"warmup_fraction=-0.1: use a fraction"),
    ({"ramp_fraction": 1.5}, r"ramp_fraction=1.5: use a fraction"),
    ({"warmup_fraction": 0.5, "ramp_fraction": 0.6}, r"warmup_fraction \+ ramp_fraction = 1.1 > 1"),
    ({"final_range": (2.0, 1.0)}, r"final_range=\(2.0, 1.0\): use 0 <= low <= high"),
    ({"update_every": 0.0}, r"update_every=0.0: use a fraction in \(0, 1\]"),
])
def test_curriculum_refuses_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MORLCurriculumCallback(**kwargs)


# --- RotatingCheckpointCallback and resume ---------------------------------------------------------------

def test_checkpoints_rotate_and_best_follows_the_evaluations(market, tmp_path):
    checkpoints = RotatingCheckpointCallback(tmp_path, save_freq_steps=8, keep_last=3, eval_env=_env(market, seed=9),
                                             eval_steps=4)
    _tqc(_env(market)).learn(64, callback=checkpoints)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [48, 56, 64]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.json", "best.zip", "ckpt_48.zip",
                                                               "ckpt_56.zip", "ckpt_64.zip"]  # no temp files left
    steps = [step for step, _ in checkpoints.evaluations]
    assert steps == [8, 16, 24, 32, 40, 48, 56, 64, 64]  # every save, and the final model once more
    scores = [score for _, score in checkpoints.evaluations]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["score"] == max(scores) and best["step"] == steps[scores.index(max(scores))]
    assert zipfile.is_zipfile(tmp_path / "best.zip")


def test_resume_after_a_crash_continues_the_step_count(market, tmp_path):
    def make_model() -> TQC:
        return _tqc(_env(market))

    def callbacks() -> RotatingCheckpointCallback:
        return RotatingCheckpointCallback(tmp_path, save_freq_steps=32, keep_last=5)

    first = resume_or_create(make_model, tmp_path)
    assert first.num_timesteps == 0
    learn_until(first, 64, callback=callbacks())
    assert [step for step, _ in list_checkpoints(tmp_path)] == [32, 64]
    with zipfile.ZipFile(tmp_path / "ckpt_64.zip") as archive:  # no market data, no replay buffer inside
        assert not {"replay_buffer_kwargs", "_last_obs", "replay_buffer"} & json.loads(archive.read("data")).keys()

    resumed = resume_or_create(make_model, tmp_path)  # "crash": a new process builds the model again
    assert resumed.num_timesteps == 64 and resumed._n_updates == first._n_updates
    assert resumed.learning_starts == 64 + 16  # the empty replay buffer refills before the first update
    for name, tensor in first.policy.state_dict().items():
        assert torch.equal(tensor, resumed.policy.state_dict()[name]), name
    assert torch.equal(resumed.log_ent_coef, first.log_ent_coef)

    learn_until(resumed, 128, callback=callbacks())
    assert resumed.num_timesteps == 128
    assert [step for step, _ in list_checkpoints(tmp_path)] == [32, 64, 96, 128]
    assert learn_until(resumed, 128) is resumed and resumed.num_timesteps == 128  # nothing left to do


def test_resume_refuses_a_checkpoint_of_another_architecture(market, tmp_path):
    _tqc(_env(market)).learn(8, callback=RotatingCheckpointCallback(tmp_path, save_freq_steps=8))
    with pytest.raises(CheckpointError, match=r"cannot resume from .*ckpt_8.zip: .*size mismatch.*trained with"):
        resume_or_create(lambda: _tqc(_env(market), net_arch=(8,)), tmp_path)
    (tmp_path / "ckpt_16.zip").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match=r"cannot resume from .*ckpt_16.zip: .*zip"):
        restore_checkpoint(_tqc(_env(market)), tmp_path / "ckpt_16.zip")


def test_latest_checkpoint_orders_by_step_and_ignores_other_files(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    for name in ("ckpt_8.zip", "ckpt_100.zip", "ckpt_16.zip", ".ckpt_200.zip.x1.tmp", "ckpt_x.zip", "best.zip"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_100.zip"


@pytest.mark.parametrize("kwargs, message", [
    ({"save_freq_steps": 0}, r"save_freq_steps=0: use an integer >= 1"),
    ({"keep_last": 0}, r"keep_last=0: use an integer >= 1"),
    ({"eval_steps": 0}, r"eval_steps=0: use an integer >= 1"),
])
def test_checkpoint_callback_refuses_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RotatingCheckpointCallback(tmp_path, **{"save_freq_steps": 8, **kwargs})


def test_checkpoint_callback_refuses_to_evaluate_on_the_training_env(market, tmp_path):
    env = _env(market)
    with pytest.raises(ConfigError, match=r"eval_env is the training env"):
        _tqc(env).learn(8, callback=RotatingCheckpointCallback(tmp_path, 8, eval_env=env))


# --- UnifiedMetricsCallback ------------------------------------------------------------------------------

def test_rollout_metrics_match_a_manual_computation(market):
    env = _env(market, stagger_resets=False)  # no episode ends within these 3 steps
    model = _tqc(env)
    capture = _Capture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    metrics = UnifiedMetricsCallback(log_freq_steps=3 * N_ENVS)
    metrics.init_callback(model)
    env.reset()
    metrics.on_training_start({}, {})
    actions = np.array([[[1.0], [-1.0], [0.5], [0.0]], [[1.0], [0.995], [-0.5], [0.2]],
                        [[0.0], [0.995], [-0.5], [1.5]]], dtype=np.float32)  # (steps, n, 1)
    pnl, cost = [], []
    for step_actions in actions:
        env.step(step_actions)
        pnl.append(env.last_pnl.numpy().copy())
        cost.append(env.last_cost.numpy().copy())
        model.num_timesteps += N_ENVS
        metrics.update_locals({"actions": step_actions})
        metrics.on_step()

    step, values = capture.dumps[-1]
    held = np.clip(actions[..., 0].astype(np.float64), -1, 1)  # (steps, n)
    previous = np.vstack([np.zeros((1, N_ENVS)), held[:-1]])
    assert step == 3 * N_ENVS
    assert values["rollout/pnl"] == pytest.approx(np.mean(pnl))
    assert values["rollout/cost"] == pytest.approx(np.mean(cost))
    assert values["rollout/reward_scaled"] == pytest.approx(100.0 * (np.mean(pnl) - np.mean(cost)))
    assert values["rollout/position_mean"] == pytest.approx(held.mean())
    assert values["rollout/position_std"] == pytest.approx(held.std(axis=1).mean())
    assert values["rollout/position_abs_mean"] == pytest.approx(np.abs(held).mean())
    assert values["rollout/turnover"] == pytest.approx(np.abs(held - previous).mean())
    assert values["rollout/action_saturation"] == pytest.approx(6 / 12)  # 1, -1 | 1, 0.995 | 0.995, 1.5
    assert values["train/ent_coef"] == pytest.approx(0.5)
    assert values["train/log_std_mean"] == pytest.approx(0.0)


def test_all_metrics_land_in_one_tensorboard_run(market, tmp_path):
    model = _tqc(_env(market), tensorboard_log=str(tmp_path / "tb"))
    callbacks = make_callbacks(tmp_path / "ckpt", save_freq_steps=48, log_freq_steps=32, eval_env=_env(market, 9),
                               eval_steps=4)
    model.learn(96, callback=callbacks, log_interval=None)

    runs = list((tmp_path / "tb").iterdir())
    assert len(runs) == 1
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    expected = {f"rollout/{name}" for name in ROLLOUT_METRICS} | {
        "train/ent_coef", "train/log_std_mean", "train/critic_loss", "train/actor_loss", "train/ent_coef_loss",
        "curriculum/w_cost_high", "eval/mean_reward"}
    assert expected <= set(events.Tags()["scalars"])
    for tag in expected:
        assert all(math.isfinite(event.value) for event in events.Scalars(tag)), tag
    assert [event.step for event in events.Scalars("rollout/pnl")] == [32, 64, 96]
    assert events.Scalars("train/ent_coef")[-1].value >= 0.01 * (1 - 1e-6)


def test_metrics_refuse_bad_settings_and_foreign_envs(market):
    with pytest.raises(ConfigError, match=r"log_freq_steps=0: use an integer >= 1"):
        UnifiedMetricsCallback(0)
    model = TQC("MultiInputPolicy", DummyVecEnv([lambda: CryptoTradingEnv(market, CONFIG)]),
                policy_kwargs={"net_arch": [8]}, buffer_size=10, device="cpu")
    with pytest.raises(ConfigError, match=r"needs a BatchCryptoEnv training env \(DummyVecEnv lacks its reward parts"):
        UnifiedMetricsCallback(8).init_callback(model)


def test_curriculum_reaches_the_first_episodes_too(market):
    # The env's own range is [0.1, 1.0] (_env); the curriculum starts at w_cost = 0.3 exactly. SB3 resets the env
    # before any callback runs, so without the curriculum's own reset the first episodes would keep U[0.1, 1].
    env = _env(market)
    seen = []

    class RecordWCosts(BaseCallback):
        def _on_rollout_start(self) -> None:  # the observation the next action is taken from
            seen.append(self.model._last_obs["w_cost"].copy())

        def _on_step(self) -> bool:
            return True

    curriculum = MORLCurriculumCallback((0.3, 0.3), (0.3, 0.3), warmup_fraction=0.0, ramp_fraction=0.0)
    _tqc(env).learn(8, callback=CallbackList([curriculum, RecordWCosts()]))
    np.testing.assert_allclose(np.concatenate(seen), 0.3, rtol=1e-6)
