"""The `gpu` profile (the seed's scale) trained for a few minutes on one bundled segment: how long would 25M
steps take?

Two commands, because the GPU machine has torch, pandas and SB3 (carried in .gpu_deps) but not hmmlearn:
- `prepare DIR` (here, on CPU): split segment 0 of the bundled BTC data with the gpu profile's WFO and
  fit its HMM, as the pipeline's split and fit_hmm stages do, and write the segment span to DIR
  (segment.parquet: the 50 scaled features, the 5 HMM columns, close; slices.json).
- `run DIR --device cuda --seconds 180`: pretrain the gpu profile's CryptoMAE for `--mae-epochs` epochs,
  build the 1024-env BatchCryptoEnv and LeanTQC of the gpu profile on the segment's train slice (encoder
  cache on the device), fill the replay buffer to `learning_starts`, then train until `--seconds` have
  passed. Prints MAE seconds per epoch, env steps/s with updates, updates/s, peak GPU memory and the
  projected wall time of the profile's 25M steps (its MAE schedule at most, plus the measured rate).
  `--override stage.key=value` (repeatable) shrinks the profile for a CPU rehearsal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch
from stable_baselines3.common.callbacks import BaseCallback

from cryptorl.config import Profile, get_profile, with_overrides
from cryptorl.envs import MarketData, resolve_reward_scale
from cryptorl.models import attach_encoder_cache, pretrain_mae
from cryptorl.seeding import seed_everything
from cryptorl.training.tqc import build_tqc, encoder_cache_for, make_env, set_matmul_precision

SEGMENT = 0
SEED = 0


def prepare(directory: Path) -> None:
    """Segment 0 of the bundled data under the gpu profile, as the split and HMM stages compute it."""
    from cryptorl import stages
    from cryptorl.config import DEFAULT_DATA_PATH
    from cryptorl.storage import ArtifactStore

    profile = get_profile("gpu")
    store = ArtifactStore("memory://gpu-benchmark")
    split = stages.split_segment(store, stages.source_ref(str(DEFAULT_DATA_PATH)), SEGMENT, profile.data,
                                 profile.features, profile.wfo)
    segment = stages.load_segment(store, split)
    context = stages.load_regime_context(store, stages.fit_hmm(store, split, profile.regime, SEED))
    directory.mkdir(parents=True, exist_ok=True)
    frame = pd.concat([segment.frame[[*segment.feature_names, "close"]], context.add_prefix("hmm:")], axis=1)
    frame.to_parquet(directory / "segment.parquet")
    (directory / "slices.json").write_text(json.dumps({"slices": segment.slices,
                                                       "features": list(segment.feature_names)}))
    print(f"wrote segment {SEGMENT} ({len(frame)} bars, train {segment.slices['train']}) to {directory}")


def load_market(directory: Path, device: torch.device) -> tuple[MarketData, dict[str, tuple[int, int]]]:
    """The prepared segment span as env data on `device` (sliced to train), and its slices."""
    frame = pd.read_parquet(directory / "segment.parquet")
    meta = json.loads((directory / "slices.json").read_text())
    context = frame[[c for c in frame.columns if c.startswith("hmm:")]]
    context.columns = [c.removeprefix("hmm:") for c in context.columns]
    start, stop = meta["slices"]["train"]
    market = MarketData.from_frames(frame[meta["features"]], context, frame["close"], start, stop, device=device)
    return market, meta["slices"]


class StopAfter(BaseCallback):
    """Ends `learn` once `seconds` have passed since the first gradient update; records when that was."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.first_update: tuple[float, int, int] | None = None  # (time, timesteps, updates)

    def _on_step(self) -> bool:
        if self.first_update is None:
            if self.model._n_updates > 0:
                self.first_update = (time.perf_counter(), self.model.num_timesteps, self.model._n_updates)
            return True
        return time.perf_counter() - self.first_update[0] < self.seconds


def run(directory: Path, device: torch.device, seconds: float, mae_epochs: int, profile: Profile) -> None:
    seed_everything(SEED)
    set_matmul_precision(device, profile.train.tf32_matmul)  # as train_tqc does (MAE included here)
    market, slices = load_market(directory, device)
    technical = market.source[:, : profile.mae.input_dim].cpu().numpy()  # (T_span, 50)
    (train_start, train_stop), (eval_start, eval_stop) = slices["train"], slices["eval"]
    mae_config = dataclasses.replace(profile.mae, max_epochs=mae_epochs)
    mae = pretrain_mae(technical[train_start:train_stop], technical[eval_start:eval_stop], mae_config, seed=SEED,
                       progress=False, device=device)
    mae_seconds_per_epoch = mae.seconds / mae.epochs_run
    print(f"MAE d_model={mae_config.d_model}: {mae_seconds_per_epoch:.1f} s/epoch "
          f"({mae_config.steps_per_epoch} x {mae_config.batch_size} windows), eval {mae.best_eval_loss:.4f} vs "
          f"naive {mae.baseline_eval_loss:.4f}")

    config = profile.train
    env_config = resolve_reward_scale(profile.env, market)
    env = make_env(market, config, env_config, config.n_envs, SEED, device)
    model = build_tqc(env, mae.model, config, SEED, tensorboard_dir=None)
    attach_encoder_cache(model.policy, encoder_cache_for(mae.model, market, device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stop_after = StopAfter(seconds)
    started = time.perf_counter()
    model.learn(total_timesteps=config.total_timesteps, callback=stop_after, progress_bar=False)
    ended = time.perf_counter()
    if stop_after.first_update is None:
        raise SystemExit(f"no gradient update within the run: learning_starts={config.learning_starts} was "
                         f"not reached in {ended - started:.0f} s")
    first_time, first_steps, first_updates = stop_after.first_update
    steps_per_s = (model.num_timesteps - first_steps) / (ended - first_time)
    updates_per_s = (model._n_updates - first_updates) / (ended - first_time)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    projected_rl = config.total_timesteps / steps_per_s
    projected_mae = profile.mae.max_epochs * mae_seconds_per_epoch
    print(f"TQC {config.n_envs} envs, batch {config.batch_size}, {config.gradient_steps} updates per vec step, "
          f"head {config.head}: warm-up to {first_steps} steps {first_time - started:.0f} s, then "
          f"{model.num_timesteps - first_steps} steps in {ended - first_time:.0f} s")
    print(f"env_steps_per_s_with_updates={steps_per_s:.0f} updates_per_s={updates_per_s:.1f} "
          f"peak_gpu_memory_gib={peak:.1f}")
    print(f"projected {config.total_timesteps / 1e6:g}M steps: {projected_rl / 3600:.2f} h of TQC "
          f"(+ at most {projected_mae / 3600:.2f} h of MAE for {profile.mae.max_epochs} epochs; goal <= 1 h)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare").add_argument("directory", type=Path)
    runner = commands.add_parser("run")
    runner.add_argument("directory", type=Path)
    runner.add_argument("--device", default="cuda")
    runner.add_argument("--seconds", type=float, default=180.0, help="training time after the first update")
    runner.add_argument("--mae-epochs", type=int, default=1)
    runner.add_argument("--override", action="append", default=[], help="stage.key=value, e.g. train.n_envs=16")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.directory)
        return
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    overrides = dict(item.split("=", 1) for item in args.override)
    profile = with_overrides(get_profile("gpu"), {"train.device": args.device, **overrides})
    run(args.directory, device, args.seconds, args.mae_epochs, profile)


if __name__ == "__main__":
    main()
