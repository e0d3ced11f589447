"""The learnability harness: does the real training stack learn a planted signal it is known to be able to use?

On the synthetic market of `cryptorl.envs.synthetic` the oracle's net result is exact. The harness runs the
real stack on it, end to end: CryptoMAE pretraining on the synthetic train slice (the frozen encoder),
`train_tqc` (BatchCryptoEnv, the compact replay, TQC, the callbacks, the FoundationFeatureExtractor with
FiLM, the encoder cache when configured), then the audit's own backtest, diagnostics and verdict on the
held-out test bars. The headline is the trained agent's share of the oracle's net Sharpe at w_cost 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryptorl.audit.agent import audit_agent
from cryptorl.audit.report import HEADLINE_W_COST
from cryptorl.config import Profile
from cryptorl.envs import observes_market, resolve_reward_scale
from cryptorl.envs.synthetic import N_TECHNICAL, PlantedSignalConfig, planted_signal_market
from cryptorl.models import attach_encoder_cache
from cryptorl.models.pretrain import pretrain_mae
from cryptorl.training.tqc import encoder_cache_for, load_trained_model, train_tqc

# The harness's markets. "slow": regimes of ~48 bars with edge 0.2 (hit rate 57.9 %, oracle net Sharpe ~15 on
# the test bars), the signal column read with noise 0.5. "one_bar": AR(1) returns (phi 0.28, the IC of the
# strong one-bar signal of a held-out market), the edge only in the last return and worth trading only where
# it beats the fee. "fast": the slow regime plus a fast +-1 signal drawn afresh every bar (edge 0.25), which
# pays to follow when trading is free and not at a high cost weight: the cost-optimal turnover falls with w_cost.
LEARNABILITY_MARKET = PlantedSignalConfig(edge=0.2, signal_noise=0.5)
LEARNABILITY_MARKETS = {
    "slow": LEARNABILITY_MARKET,
    "one_bar": PlantedSignalConfig(edge=0.0, ar_coefficient=0.28),
    "fast": PlantedSignalConfig(edge=0.15, fast_edge=0.25, signal_noise=0.5),
}


@dataclass(frozen=True)
class LearnabilityResult:
    """What the trained agent made of the planted signal, on the held-out synthetic test bars."""

    trained_sharpe: float  # net (real fee) annualised Sharpe at w_cost 1
    oracle_sharpe: float  # the oracle's, same bars, same fee
    verdict: str
    reasons: list[str]
    measurements: dict[str, float | None]  # what each verdict rule read
    position_std: float  # over the test bars at w_cost 1
    oracle_correlation: float  # correlation of the agent's positions with the oracle's
    turnover: dict[float, float]  # per audited w_cost
    oracle_turnover: dict[float, float]  # the oracle's, per audited w_cost
    seconds: float

    @property
    def oracle_fraction(self) -> float:
        return self.trained_sharpe / self.oracle_sharpe


def run_learnability(
    profile: Profile, market_config: PlantedSignalConfig, work_dir: Path, *, progress: bool = False
) -> LearnabilityResult:
    """Pretrain, train and audit `profile` on the planted-signal market; `profile.seed` seeds every stage."""
    started = time.perf_counter()
    synthetic = planted_signal_market(market_config)
    source = synthetic.market.source.cpu().numpy()  # (T, 55)
    technical = {name: source[slice(*synthetic.slices[name]), :N_TECHNICAL] for name in ("train", "eval")}
    encoder = pretrain_mae(
        technical["train"], technical["eval"], profile.mae, seed=profile.seed, progress=progress
    ).model
    trained = train_tqc(
        synthetic.slice("train"),
        synthetic.slice("eval"),
        encoder,
        profile.train,
        profile.env,
        seed=profile.seed,
        work_dir=work_dir,
        progress=progress,
    )

    test = synthetic.slice("test")
    env_config = resolve_reward_scale(profile.env, synthetic.slice("train"))
    model = load_trained_model(trained.model_path, device=profile.train.device)
    if not observes_market(model.observation_space):
        attach_encoder_cache(model.policy, encoder_cache_for(encoder, synthetic.market, model.device))
    audited = audit_agent(
        model,
        trained.tensorboard_dir,
        test,
        env_config,
        profile.seed,
        {"oracle": synthetic.oracle_policy(env_config.fee)},
    )
    headline = audited.results["trained"].runs[HEADLINE_W_COST]
    oracle_positions = audited.results["oracle"].runs[HEADLINE_W_COST].positions
    return LearnabilityResult(
        trained_sharpe=headline.metrics.sharpe,
        oracle_sharpe=audited.results["oracle"].runs[HEADLINE_W_COST].metrics.sharpe,
        verdict=audited.verdict.verdict,
        reasons=audited.verdict.reasons,
        measurements={check["measurement"]: check["value"] for check in audited.verdict.checks},
        position_std=float(np.std(headline.positions)),
        oracle_correlation=_correlation(headline.positions, oracle_positions),
        turnover={w: run.metrics.turnover for w, run in audited.results["trained"].runs.items()},
        oracle_turnover={w: run.metrics.turnover for w, run in audited.results["oracle"].runs.items()},
        seconds=time.perf_counter() - started,
    )


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, 0 when either side is constant (a collapsed agent follows nothing)."""
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
