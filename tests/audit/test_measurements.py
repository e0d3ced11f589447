"""Verdicts reached through the real `audit_agent` → `measurements()` → `judge()` path, and `measurements()` itself.

The market is the planted-signal one (cryptorl/envs/synthetic.py): its signal column shows the hidden regime
that drives the next return, so a policy that follows it is a real, market-driven, cost-aware trader. A tiny
real TQC (tests/tiny.py, about a second of training) stands in for the trained agent, so `audit_agent` runs
its model diagnostics too; the policy under judgement is a hand-built one, judged exactly as
`cryptorl audit --policy SPEC` judges any policy that is not the trained agent.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cryptorl.audit.agent import AUDIT_W_COSTS, SATURATED_POSITION, audit_agent, measurements
from cryptorl.audit.backtest import backtest
from cryptorl.audit.policies import MomentumPolicy
from cryptorl.audit.report import HEADLINE_W_COST
from cryptorl.audit.verdict import COLLAPSED, DEGENERATE, HEALTHY, judge
from cryptorl.envs import MARKET, W_COST, MarketData, resolve_reward_scale
from cryptorl.envs.synthetic import PlantedSignalConfig, planted_signal_market
from cryptorl.models import attach_encoder_cache
from cryptorl.training.tqc import encoder_cache_for, load_trained_model, train_tqc
from tests.tiny import TINY_ENV, TINY_TRAIN, tiny_encoder

MARKET_CONFIG = PlantedSignalConfig(n_bars=1_500, edge=0.2, signal_noise=1.0)


class SignalFollower:
    """Holds `scale * tanh(gain * mean signal)` over the last 1 + 8 * w_cost bars: it waits longer when costs weigh more.

    Reads the planted signal column through `MarketData` by bar, like every baseline, and w_cost from the
    observation; causal (bars <= t only).
    """

    def __init__(self, market: MarketData, column: int, scale: float, gain: float = 2.0) -> None:
        signal = market.source[:, column].cpu().numpy().astype(np.float64)  # (T,)
        self.cumulative = np.concatenate([[0.0], np.cumsum(signal)])  # (T + 1,)
        self.scale, self.gain = scale, gain

    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        bars = np.asarray(bars, dtype=np.int64)  # (n,)
        lookback = np.minimum(1 + np.rint(8 * observation[W_COST].reshape(-1)).astype(np.int64), bars + 1)  # (n,)
        mean = (self.cumulative[bars + 1] - self.cumulative[bars + 1 - lookback]) / lookback
        return (self.scale * np.tanh(self.gain * mean)).astype(np.float32)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """A tiny real TQC trained on the planted market: the `trained` entry audit_agent always diagnoses."""
    synthetic = planted_signal_market(MARKET_CONFIG)
    encoder = tiny_encoder()
    trained = train_tqc(synthetic.slice("train"), synthetic.slice("eval"), encoder, TINY_TRAIN, TINY_ENV, seed=0,
                        work_dir=tmp_path_factory.mktemp("tqc"), progress=False)
    model = load_trained_model(trained.model_path, device="cpu")
    if MARKET not in model.observation_space.spaces:
        attach_encoder_cache(model.policy, encoder_cache_for(encoder, synthetic.market, torch.device("cpu")))
    return synthetic, model, trained.tensorboard_dir


def audited(agent, name, policy):
    synthetic, model, tensorboard_dir = agent
    env_config = resolve_reward_scale(TINY_ENV, synthetic.slice("train"))
    return audit_agent(model, tensorboard_dir, synthetic.slice("test"), env_config, 0, {name: policy}, policy=name)


def fired(verdict) -> list[str]:
    return [check["rule"] for check in verdict.checks if check["fired"]]


def test_a_policy_following_the_planted_signal_is_healthy(agent):
    synthetic = agent[0]
    result = audited(agent, "signal", SignalFollower(synthetic.market, MARKET_CONFIG.signal_column, scale=0.8))
    assert result.verdict.verdict == HEALTHY, result.verdict.reasons
    values = {check["measurement"]: check["value"] for check in result.verdict.checks}
    assert values["turnover_ratio_w2_w0"] < 0.5  # it really waits when costs weigh more
    assert values["position_std_across_states"] > 0.3 and values["action_saturation"] == 0.0
    assert result.results["signal"].runs[HEADLINE_W_COST].metrics.sharpe > 0  # it earns from the signal
    assert result.diagnostics["critic"]["spread_ratio"] > 0  # the trained agent was diagnosed on the way


def test_a_policy_saturated_at_the_bounds_is_degenerate(agent):
    synthetic = agent[0]
    # ±tanh(2) = ±0.964: where a gSDE actor pinned at its clipped pre-tanh mean sits (see SATURATED_POSITION).
    pinned = SignalFollower(synthetic.market, MARKET_CONFIG.signal_column, scale=float(np.tanh(2.0)), gain=1e3)
    result = audited(agent, "pinned", pinned)
    assert result.verdict.verdict == DEGENERATE and fired(result.verdict) == ["saturated"]
    assert result.verdict.reasons[0].startswith("action_saturation 1 > 0.9")


@pytest.mark.parametrize("market_seed", [0, 1, 2])
def test_momentum_is_never_collapsed(agent, market_seed):
    """Momentum moves with the market whatever the market: the collapse rules must never fire on it."""
    # Other draws of the market, same length: the agent's encoder cache (of the first draw) still indexes it, and
    # the verdict under test is momentum's, which never reads the agent.
    synthetic = planted_signal_market(dataclasses.replace(MARKET_CONFIG, seed=market_seed))
    result = audited((synthetic, *agent[1:]), "momentum", MomentumPolicy(synthetic.market))
    assert result.verdict.verdict != COLLAPSED
    assert not {"constant_across_states", "constant_over_time"} & set(fired(result.verdict))


# measurements() itself, on a real backtest of a scripted policy.
SPAN = MarketData.random(300, seed=0)
TEST = SPAN.with_slice(100, 300)
SCRIPTED = np.where(np.arange(300) % 4 < 2, 0.5, -0.5).astype(np.float32)  # (T,) flips every 2 bars


def scripted_policy(observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
    """The scripted positions at w_cost 0, half of them at every other w_cost (so the turnover ratio is 0.5)."""
    scale = np.where(observation[W_COST].reshape(-1) > 0, 0.5, 1.0)
    return (SCRIPTED[np.asarray(bars, dtype=np.int64)] * scale).astype(np.float32)


@pytest.fixture(scope="module")
def scripted():
    exact = dataclasses.replace(TINY_ENV, no_trade_band=0.0)  # the scripted targets are the positions
    return backtest(scripted_policy, TEST, exact, AUDIT_W_COSTS, include_market=True)


def test_measurements_reads_each_number_from_where_it_lives(scripted):
    state_positions = np.array([1.0, 0.96, SATURATED_POSITION, -0.95, -0.97, 0.0, 0.2, -0.3], dtype=np.float32)
    diagnostics = {"attribution": {"actor_share": {"technical": 0.25, "hmm": 0.125, "position": 0.5,
                                                   "w_cost": 0.125}},
                   "critic": {"spread_ratio": 2.5}}
    values = measurements(state_positions, scripted, diagnostics)
    assert values == {
        "position_std_across_states": pytest.approx(0.76636, abs=1e-5),  # std of the 8 positions (population)
        "position_std_over_test": pytest.approx(0.25, abs=1e-5),  # ±0.25 at the headline w_cost 1 (±0.5 at 0)
        "action_saturation": 3 / 8,  # |p| > 0.95 strictly: 1.0, 0.96, -0.97; not ±0.95 itself
        "actor_market_attribution": 0.375,  # technical + hmm
        "q_spread_over_noise": 2.5,
        "turnover_ratio_w2_w0": pytest.approx(0.5, rel=1e-6),
    }


def test_measurements_without_network_diagnostics_leave_those_rules_unmeasured(scripted):
    values = measurements(SCRIPTED[:8], scripted, None)  # four at +0.5, four at -0.5
    assert values["actor_market_attribution"] is None and values["q_spread_over_noise"] is None
    assert values["position_std_across_states"] == pytest.approx(0.5)


@pytest.mark.parametrize("n_saturated, fires", [(90, False), (91, True)])
def test_saturation_threshold_through_measurements(scripted, n_saturated, fires):
    """90 of 100 states at the bound is not yet saturated (the rule is `> 0.9`); 91 are."""
    positions = np.concatenate([np.ones(n_saturated), np.full(100 - n_saturated, 0.3)]).astype(np.float32)  # (100,)
    values = measurements(positions, scripted, None)
    assert values["action_saturation"] == n_saturated / 100
    assert ("saturated" in fired(judge(values))) == fires
