"""The profiles (`smoke`, `demo`, `cpu`, `gpu`, `reference`), each written as overrides of the defaults."""

from __future__ import annotations

import os

from cryptorl.config.checks import renamed
from cryptorl.config.overrides import with_overrides
from cryptorl.config.stages import Profile
from cryptorl.errors import ConfigError

# The original system's own training choices, as overrides of any profile (`--profile reference` is them at its
# scale):
# the reference every collapsed agent was trained with.
REFERENCE_TRAINING: dict[str, str] = {
    "train.learning_rate": "0.0003",
    "train.ent_coef": "auto_0.5",
    "train.use_sde": "true",
    "train.counterfactual_actions": "0",
    "train.state_passthrough": "false",
    "train.exact_cost_critic": "false",
    "train.counterfactual_w_cost": "false",
    "train.counterfactual_positions": "false",
    "env.no_trade_band": "0",
    "train.smoothness": "0",
}


PROFILE_ENV_VAR = "CRYPTORL_PROFILE"  # the default profile of this machine (a worker's, for deployment runs)
DEFAULT_PROFILE = "smoke"


def get_profile(name: str | None = None) -> Profile:
    """The named profile, validated; None is the machine's default, `$CRYPTORL_PROFILE` or else smoke.

    The deployments leave `profile` at "default", so a run started from the UI takes its worker's: the GPU
    server's worker sets gpu, a laptop's UI stays smoke and never starts the 25M-step profile by accident.
    """
    source = "" if name else f" (from ${PROFILE_ENV_VAR})"
    name = renamed("profile", name or os.environ.get(PROFILE_ENV_VAR) or DEFAULT_PROFILE)
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}{source}: use one of {', '.join(PROFILES)}")
    return PROFILES[name].validate()


_SMOKE_MAE = {
    "mae.d_model": "32",
    "mae.n_heads": "2",
    "mae.n_layers": "1",
    "mae.dim_feedforward": "64",
    "mae.dropout": "0",
    "mae.lr": "3e-3",
    "mae.batch_size": "64",
    "mae.max_epochs": "8",
    "mae.steps_per_epoch": "25",
    "mae.patience": "3",
}
# The cpu profile: one segment trained and audited in <= 15 minutes on 2 CPU cores (torch on one thread each, see
# README "Threads"): ~8k updates of batch 128, 8x smoke's; its MAE pretrains in about 2 minutes.
_CPU = {
    "wfo.train": "12M",
    "wfo.eval": "2M",
    "wfo.test": "2M",
    "wfo.step": "2M",
    "mae.d_model": "32",
    "mae.n_heads": "2",
    "mae.n_layers": "2",
    "mae.dim_feedforward": "128",
    "mae.dropout": "0",
    "mae.lr": "2e-3",
    "mae.batch_size": "128",
    "mae.max_epochs": "12",
    "mae.steps_per_epoch": "50",
    "mae.patience": "3",
    "env.episode_length": "256",
    "train.total_timesteps": "32768",
    "train.n_envs": "16",
    "train.batch_size": "128",
    "train.replay_ratio": "0.25",
    "train.learning_starts": "1024",
    "train.buffer_size": "100000",
    "train.net_arch": "128,128",
    "train.features_dim": "128",
    "train.checkpoints": "4",
    "train.eval_steps": "256",
    "train.log_every_steps": "2048",
}
# Every profile, written one way: overrides of the defaults (the original system's scale, `gpu`).
PROFILE_OVERRIDES: dict[str, dict[str, str]] = {
    # CI: minutes on 2 CPU cores.
    "smoke": {
        "wfo.train": "6M",
        "wfo.eval": "1M",
        "wfo.test": "1M",
        "wfo.step": "1M",
        "regime.n_inits": "2",
        "regime.n_iter": "50",
        **_SMOKE_MAE,
        "env.episode_length": "256",
        "train.total_timesteps": "4096",
        "train.n_envs": "8",
        "train.batch_size": "64",
        "train.replay_ratio": "0.25",
        "train.learning_starts": "256",
        "train.buffer_size": "20000",
        "train.net_arch": "64,64",
        "train.features_dim": "64",
        "train.checkpoints": "2",
        "train.eval_steps": "128",
        "train.log_every_steps": "512",
    },
    "cpu": _CPU,
    # The original system's full scale, with this project's training levers, on the GPU server.
    "gpu": {},
    # `make demo`: the cpu profile's slices, model and update batch with a training budget whose segment-0 flow
    # (split, HMM, MAE, TQC, audit, promotion) takes at most 6 minutes on 2 CPU cores (README).
    "demo": {**_CPU, "train.total_timesteps": "16384"},
    # The original system's exact configuration (scale and training choices), kept as the reference.
    "reference": REFERENCE_TRAINING,
}
PROFILES: dict[str, Profile] = {
    name: with_overrides(Profile(name=name), overrides) for name, overrides in PROFILE_OVERRIDES.items()
}
