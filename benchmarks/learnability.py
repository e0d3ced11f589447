"""Learnability: the share of the oracle's net Sharpe the real stack earns on a planted signal, per setting.

Each setting is a set of `STAGE.KEY=VALUE` overrides on a profile (`--profile`, default smoke), run over 3
seeds on one of the planted-signal markets of `cryptorl.learnability.LEARNABILITY_MARKETS` (`--market`: slow,
one_bar or fast; `--n-bars` lengthens it for a larger budget). Every
run pretrains its own CryptoMAE, trains TQC and is judged by the audit's own rules on held-out bars.
`seed` is the seed's training configuration (what every agent collapsed with), `defaults` the profile as
it ships; the others each change one lever of the defaults (n_steps_3 also turns the counterfactual
actions off, which need one-step targets). Torch runs one thread (a loaded 2-core
machine with two contending threads was measured 13x slower). The last line is
`oracle_fraction=<median over the seeds of the shipped defaults>`.

    python benchmarks/learnability.py [--seeds 0,1,2] [--settings defaults,seed,...] [--market slow]
                                      [--profile smoke] [--set STAGE.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch

from cryptorl.config import REFERENCE_TRAINING, get_profile, with_overrides
from cryptorl.envs.synthetic import PlantedSignalConfig
from cryptorl.learnability import LEARNABILITY_MARKETS, LearnabilityResult, run_learnability

SETTINGS: dict[str, dict[str, str]] = {
    "reference": REFERENCE_TRAINING,
    "defaults": {},
    "gamma_0.5": {"train.gamma": "0.5"},
    "no_exact_cost": {"train.exact_cost_critic": "false"},
    "counterfactual_0": {"train.counterfactual_actions": "0"},
    "no_counterfactual_state": {"train.counterfactual_w_cost": "false", "train.counterfactual_positions": "false"},
    "no_passthrough": {"train.state_passthrough": "false"},
    "lr_3e-4": {"train.learning_rate": "0.0003"},
    "ent_auto_0.5": {"train.ent_coef": "auto_0.5"},
    "sde_on": {"train.use_sde": "true"},
    "drop_0": {"train.top_quantiles_to_drop": "0"},
    "reward_volatility": {"env.reward_normalization": "train_volatility"},
    "attention_pool": {"train.head": "attention_pool"},
    "current_bar": {"train.current_bar": "true"},
    "n_steps_3": {"train.n_steps": "3", "train.counterfactual_actions": "0"},
    "counterfactual_3": {"train.counterfactual_actions": "3"},
    "no_encoder_cache": {"train.use_encoder_cache": "false"},
    "per_op_adam": {"train.fused_optimizer": "false"},
    # Turnover control (issue 18): each one lever of the defaults.
    "band_0.15": {"env.no_trade_band": "0.15"},
    "band_0.3": {"env.no_trade_band": "0.3"},
    "partial_0.2": {"env.adjust_rate": "0.2"},
    "interval_4": {"env.decision_interval": "4"},
    "fee_x3": {"train.fee_multiplier": "3"},
    "wcost_4": {"train.w_cost_final_high": "4"},
    "smooth_5": {"train.smoothness": "5"},
    "horizon": {"train.gamma": "0.99", "train.n_steps": "4", "train.counterfactual_actions": "0"},
}


def run(setting: str, seed: int, market: PlantedSignalConfig, profile: str,
        common: dict[str, str]) -> LearnabilityResult:
    overrides = {**common, **SETTINGS[setting], "train.device": "cpu"}
    configured = dataclasses.replace(with_overrides(get_profile(profile), overrides), seed=seed)
    with tempfile.TemporaryDirectory() as work_dir:
        return run_learnability(configured, dataclasses.replace(market, seed=seed), Path(work_dir))


def turnovers(by_w_cost: dict[float, float]) -> str:
    return " / ".join(f"{by_w_cost[w]:.4f}" for w in (0.0, 1.0, 2.0))


def fired(result: LearnabilityResult) -> str:
    """The verdict's reasons, shortened to their measurement and value ("-" when healthy)."""
    if result.verdict == "healthy":
        return "-"
    return "; ".join(reason.split(":")[0] for reason in result.reasons)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (other counts round differently)")
    parser.add_argument("--market", default="slow", choices=list(LEARNABILITY_MARKETS))
    parser.add_argument("--n-bars", type=int, default=None, help="bars of the synthetic market (default 6000)")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="applied to every setting (e.g. train.total_timesteps=16384 for a larger budget)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    market = LEARNABILITY_MARKETS[args.market]
    market = dataclasses.replace(market, n_bars=args.n_bars) if args.n_bars else market
    common = dict(item.split("=", 1) for item in args.overrides)
    print(f"market {args.market} ({market}), profile {args.profile}, overrides {common}")
    print("| setting | seed | oracle fraction | trained Sharpe | oracle Sharpe | verdict | position std "
          "| corr with oracle | turnover w0 / w1 / w2 | oracle turnover w0 / w1 / w2 | Q spread / noise "
          "| rules fired | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    medians: dict[str, float] = {}
    for setting in args.settings.split(","):
        fractions = []
        for seed in seeds:
            result = run(setting, seed, market, args.profile, common)
            fractions.append(result.oracle_fraction)
            print(f"| {setting} | {seed} | {result.oracle_fraction:.2f} | {result.trained_sharpe:.2f} | "
                  f"{result.oracle_sharpe:.2f} | {result.verdict} | {result.position_std:.3f} | "
                  f"{result.oracle_correlation:.2f} | {turnovers(result.turnover)} | "
                  f"{turnovers(result.oracle_turnover)} | {result.measurements['q_spread_over_noise']:.2f} | "
                  f"{fired(result)} | {result.seconds:.0f} |", flush=True)
        medians[setting] = statistics.median(fractions)
    for setting, median in medians.items():
        print(f"{setting}: median oracle_fraction={median:.3f}")
    print(f"oracle_fraction={medians.get('defaults', float('nan')):.3f}")


if __name__ == "__main__":
    main()
