"""Rotating checkpoints, best-model selection and crash-safe resume for SB3 off-policy models.

Layout of `save_dir`: `ckpt_<num_timesteps>.zip` (the last `keep_last`), `best.zip` + `best.json`
({"step", "score", "checkpoint"}) when an eval env is given. Every file is written under a temporary name and
renamed, so a crash never leaves a half-written checkpoint under a final name.

Checkpoints exclude the replay buffer (millions of transitions) and its kwargs (they hold the env's
`MarketData`): a resumed run refills the buffer for `learning_starts` steps before its first update, exactly
as a fresh run does, then continues the step count, the schedules and the curriculum where it left off.
The model is always built by the caller's own factory and the checkpoint only restores learned state and
counters, so a resume cannot silently change hyperparameters.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file, recursive_setattr
from stable_baselines3.common.utils import check_for_correct_spaces
from stable_baselines3.common.vec_env import VecEnv

from cryptorl.errors import CheckpointError, ConfigError

Model = TypeVar("Model", bound=OffPolicyAlgorithm)

CHECKPOINT_EXCLUDE = ("replay_buffer_kwargs", "_last_obs", "_last_original_obs")
BEST_MODEL, BEST_INFO = "best.zip", "best.json"
_CHECKPOINT_NAME = re.compile(r"ckpt_(\d+)\.zip")


def checkpoint_path(save_dir: str | Path, step: int) -> Path:
    return Path(save_dir) / f"ckpt_{step}.zip"


def list_checkpoints(save_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every `ckpt_<step>.zip` in `save_dir`, oldest first (by step, not by name)."""
    if not Path(save_dir).is_dir():
        return []
    found = [
        (int(match[1]), path) for path in Path(save_dir).iterdir() if (match := _CHECKPOINT_NAME.fullmatch(path.name))
    ]
    return sorted(found)


def latest_checkpoint(save_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in `save_dir`, or None when there is none."""
    checkpoints = list_checkpoints(save_dir)
    return checkpoints[-1][1] if checkpoints else None


def evaluate_mean_reward(model: BaseAlgorithm, env: VecEnv, n_steps: int, seed: int) -> float:
    """Mean reward per env-step of the deterministic policy over `n_steps` steps of every env of `env`.

    The env is reseeded first, so every evaluation sees the same start bars and w_costs: scores of
    successive checkpoints are comparable.
    """
    env.seed(seed)
    observation = cast(dict[str, np.ndarray], env.reset())  # a BatchCryptoEnv observes dicts
    total = 0.0
    for _ in range(n_steps):
        actions, _ = model.predict(observation, deterministic=True)
        next_observation, rewards, _, _ = env.step(actions)
        observation = cast(dict[str, np.ndarray], next_observation)
        total += float(rewards.mean())
    return total / n_steps


class RotatingCheckpointCallback(BaseCallback):
    """Every `save_freq_steps` env-steps save `ckpt_<num_timesteps>.zip`, keep the last `keep_last`.

    `num_timesteps` grows by n_envs per step, so a save happens at the first step at or past each multiple of
    `save_freq_steps`. Training end always saves (overwriting a checkpoint of the same step: SB3 runs one more
    update after the last step), so the latest checkpoint is the final model. With an
    `eval_env` (a separate env: evaluating resets it), each checkpoint is scored by `evaluate_mean_reward`
    (logged as `eval/mean_reward`) and copied to `best.zip` when it beats the best so far, which survives
    a resume through `best.json`.
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_freq_steps: int,
        keep_last: int = 3,
        eval_env: VecEnv | None = None,
        eval_steps: int = 512,
        eval_seed: int = 0,
        exclude: Sequence[str] = CHECKPOINT_EXCLUDE,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        for name, value in (("save_freq_steps", save_freq_steps), ("keep_last", keep_last), ("eval_steps", eval_steps)):
            if value < 1:
                raise ConfigError(f"RotatingCheckpointCallback {name}={value!r}: use an integer >= 1")
        self.save_dir = Path(save_dir)
        self.save_freq_steps, self.keep_last = save_freq_steps, keep_last
        self.eval_env, self.eval_steps, self.eval_seed = eval_env, eval_steps, eval_seed
        self.exclude = list(exclude)
        self.evaluations: list[tuple[int, float]] = []  # (step, score) of every evaluation of this run
        self.best_score = float("-inf")
        self._last_saved_step = 0

    def _init_callback(self) -> None:
        if self.eval_env is not None and self.eval_env.unwrapped is self.training_env.unwrapped:
            raise ConfigError(
                "RotatingCheckpointCallback eval_env is the training env: evaluating would reset "
                "training episodes; build a second env (e.g. on the eval slice)"
            )
        self.save_dir.mkdir(parents=True, exist_ok=True)
        best_info = self.save_dir / BEST_INFO
        if best_info.exists():  # a resumed run must beat the best of the run it continues
            self.best_score = float(json.loads(best_info.read_text())["score"])

    def _on_training_start(self) -> None:
        self._last_saved_step = self.num_timesteps  # a resume does not re-save the checkpoint it came from

    def _on_step(self) -> bool:
        if self.num_timesteps // self.save_freq_steps > self._last_saved_step // self.save_freq_steps:
            self._save(self.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        self._save(self.model.num_timesteps)

    def _save(self, step: int) -> None:
        path = checkpoint_path(self.save_dir, step)
        _atomic_write(path, lambda handle: self.model.save(handle, exclude=self.exclude))
        self._last_saved_step = step
        for _, old in list_checkpoints(self.save_dir)[: -self.keep_last]:
            old.unlink()
        if self.eval_env is not None:
            self._evaluate(step, path, self.eval_env)

    def _evaluate(self, step: int, path: Path, eval_env: VecEnv) -> None:
        score = evaluate_mean_reward(self.model, eval_env, self.eval_steps, self.eval_seed)
        self.evaluations.append((step, score))
        self.logger.record("eval/mean_reward", score)
        if score > self.best_score:
            self.best_score = score
            with path.open("rb") as source:
                _atomic_write(self.save_dir / BEST_MODEL, lambda handle: shutil.copyfileobj(source, handle))
            info = json.dumps({"step": step, "score": score, "checkpoint": path.name})
            _atomic_write(self.save_dir / BEST_INFO, lambda handle: handle.write(info.encode()))


def restore_checkpoint(model: Model, path: str | Path) -> Model:
    """Load a checkpoint's learned state and counters into `model`, built as the checkpointed one was.

    Restores the networks, optimizers, `log_ent_coef`, `num_timesteps`, `_n_updates` and `_episode_num`, and
    moves `learning_starts` past the restored step count: the replay buffer starts empty and must refill.
    """
    try:
        data, params, variables = load_from_zip_file(path, device=model.device)
        env = model.get_env()
        if data is None or env is None:  # an archive without `data`, or a model built without its env
            raise TypeError("the checkpoint holds no model data, or the model has no env")
        check_for_correct_spaces(env, data["observation_space"], data["action_space"])
        model.set_parameters(params, exact_match=True, device=model.device)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:  # TypeError: an archive without `data`
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise CheckpointError(
            f"cannot resume from {path}: {reason}; resume with the model configuration it "
            "was trained with, or move the checkpoint directory away to start fresh"
        ) from None
    for name, value in (variables or {}).items():
        if isinstance(value, torch.Tensor):  # e.g. log_ent_coef; `.data` keeps the tensor its optimizer holds
            recursive_setattr(model, f"{name}.data", value.data)
    model.num_timesteps = int(data["num_timesteps"])
    model._n_updates = int(data["_n_updates"])
    model._episode_num = int(data["_episode_num"])
    model.learning_starts += model.num_timesteps
    return model


def resume_or_create(make_model: Callable[[], Model], save_dir: str | Path) -> Model:
    """`make_model()`, restored from the latest complete checkpoint in `save_dir` when there is one.

    Writes are atomic, but a checkpoint copied by hand or cut short by a full disk or a lost file-system
    cache can still be incomplete: such a file is skipped with a warning and the next older one is used.
    """
    model = make_model()
    for _, path in reversed(list_checkpoints(save_dir)):
        if is_complete_checkpoint(path):
            return restore_checkpoint(model, path)
        warnings.warn(
            f"skipping checkpoint {path}: not a complete checkpoint (an interrupted write?); "
            "resuming from an older checkpoint or from scratch",
            RuntimeWarning,
            stacklevel=2,
        )
    return model


def is_complete_checkpoint(path: Path) -> bool:
    """Whether `path` is a whole SB3 archive: its `data` and `policy.pth` members, every CRC intact.

    A merely readable zip is not enough: SB3 stores torch's own zip files (`*.pth`) uncompressed inside,
    so the first half of a truncated checkpoint opens as the zip of one of them.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return {"data", "policy.pth"} <= set(archive.namelist()) and archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def learn_until(model: Model, total_timesteps: int, **learn_kwargs: Any) -> Model:
    """Train until `model.num_timesteps` reaches `total_timesteps` (counting steps done before a resume).

    SB3's `learn(n, reset_num_timesteps=False)` trains n MORE steps; this passes the remainder, keeps the
    step count, and keeps logging into the same TensorBoard run.
    """
    remaining = total_timesteps - model.num_timesteps
    if remaining <= 0:
        return model
    return model.learn(total_timesteps=remaining, reset_num_timesteps=False, **learn_kwargs)


def _atomic_write(target: Path, write: Callable[[io.BufferedWriter], Any]) -> None:
    """Stream `write(handle)` into a temporary file beside `target`, fsync it, then rename it to `target`."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
