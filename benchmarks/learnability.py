"""Learnability: the share of the oracle's net Sharpe the real stack earns on a planted signal, per setting.

Each setting is a set of `STAGE.KEY=VALUE` overrides on the smoke profile (the scale of `make demo`), run
over 3 seeds on the planted-signal market of `cryptorl.learnability.LEARNABILITY_MARKET`. Every
run pretrains its own CryptoMAE, trains TQC and is judged by the audit's own rules on held-out bars.
`seed` is the seed's training configuration (what every agent collapsed with), `defaults` the profile as
it ships; the others each change one lever of the defaults (n_steps_3 also turns the counterfactual
actions off, which need one-step targets). Torch runs one thread (a loaded 2-core
machine with two contending threads was measured 13x slower). The last line is
`oracle_fraction=<median over the seeds of the shipped defaults>`.

    python benchmarks/learnability.py [--seeds 0,1,2] [--settings defaults,seed,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch

from cryptorl.config import SEED_TRAINING, get_profile, with_overrides
from cryptorl.learnability import LEARNABILITY_MARKET, LearnabilityResult, run_learnability

SETTINGS: dict[str, dict[str, str]] = {
    "seed": SEED_TRAINING,
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
}


def run(setting: str, seed: int) -> LearnabilityResult:
    overrides = {**SETTINGS[setting], "train.device": "cpu"}
    profile = dataclasses.replace(with_overrides(get_profile("smoke"), overrides), seed=seed)
    with tempfile.TemporaryDirectory() as work_dir:
        return run_learnability(profile, dataclasses.replace(LEARNABILITY_MARKET, seed=seed), Path(work_dir))


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    print("| setting | seed | oracle fraction | trained Sharpe | oracle Sharpe | verdict | position std "
          "| corr with oracle | turnover w0 / w2 | Q spread / noise | rules fired | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    medians: dict[str, float] = {}
    for setting in args.settings.split(","):
        fractions = []
        for seed in seeds:
            result = run(setting, seed)
            fractions.append(result.oracle_fraction)
            print(f"| {setting} | {seed} | {result.oracle_fraction:.2f} | {result.trained_sharpe:.2f} | "
                  f"{result.oracle_sharpe:.2f} | {result.verdict} | {result.position_std:.3f} | "
                  f"{result.oracle_correlation:.2f} | {result.turnover[0.0]:.4f} / {result.turnover[2.0]:.4f} | "
                  f"{result.measurements['q_spread_over_noise']:.2f} | {fired(result)} | {result.seconds:.0f} |",
                  flush=True)
        medians[setting] = statistics.median(fractions)
    for setting, median in medians.items():
        print(f"{setting}: median oracle_fraction={median:.3f}")
    print(f"oracle_fraction={medians.get('defaults', float('nan')):.3f}")


if __name__ == "__main__":
    main()
