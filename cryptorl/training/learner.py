"""`LeanTQC`: sb3-contrib's TQC with the same update, minus the work that is not its math.

`TQC.train` is kept step for step (same samples, same random draws, same losses, same optimizer steps, in
the same order); what goes is work whose result nothing reads:
- the actor loss backpropagates through the critic only to reach the actions: SB3 also computes the
  critic's weight gradients and its whole features extractor's backward there, which the next critic
  update discards (`zero_grad`); here that pass runs the critic on detached parameters, so autograd builds
  no graph through its extractor and computes only the gradient w.r.t. the actions;
- the target update averages only trainable parameters, in two fused `torch._foreach_*` calls instead of
  two kernels per tensor: the frozen encoder copies inside the extractors stay exactly the frozen weights
  (SB3 averages identical tensors there, a float-rounding drift at most);
- the quantile Huber loss takes 8 passes over its (B, n_critics, n_quantiles, n_targets) pairs, forward and
  backward, instead of about 20 (`quantile_huber_loss` below; equal to sb3-contrib's, value and gradient, bit
  for bit);
- losses and the entropy coefficient are logged from tensors gathered over the call and read back once,
  not with one `.item()` (a device sync on CUDA) per loss per gradient step.

The update of one batch is one function of tensors (`LeanTQC.update`), so `train.compile` can hand it to
`torch.compile` (cryptorl/training/compiled.py).

- the target critic's parameters require no gradient (nothing trains them: Polyak averaging writes them).
  sb3-contrib's critic runs its extractor under `set_grad_enabled(True)` even inside the TD target's
  `no_grad`, so with trainable-looking target weights every update recorded a graph through the target
  critic's extractor that nothing backpropagated.

One more saving lives with the policy: the encoder cache answers the update's five lookups of the same
two batches from a memo.

On CPU the same seed gives the same parameters as `TQC` bit for bit with the same optimizer when the
extractor reads the encoder cache (tests/training/test_learner.py); with market-window observations the
target encoder's rounding drift is the only difference. `train.fused_optimizer` (Adam's fused kernel)
rounds differently; the test bounds that too.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from sb3_contrib import TQC
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from torch import nn

from cryptorl.envs.market import W_COST
from cryptorl.training.compiled import CompiledUpdate

LOSS_KEYS = ("ent_coef_loss", "ent_coef", "actor_loss", "critic_loss")  # an update's (4,) loss row, in order


def record_losses(logger: Logger, n_updates: int, rows: list[torch.Tensor], learned_entropy: bool) -> None:
    """The same keys and values as `TQC.train` logs (means of the float32 values, in float64), read back from
    the call's (4,) loss rows at once: not one `.item()` (a device sync on CUDA) per loss per gradient step."""
    logger.record("train/n_updates", n_updates, exclude="tensorboard")
    if not rows:
        return
    means = _host_floats(rows).mean(axis=0)  # (4,)
    for key, mean in zip(LOSS_KEYS, means, strict=True):
        if key != "ent_coef_loss" or learned_entropy:
            logger.record(f"train/{key}", float(mean))


class LeanTQC(TQC):
    """TQC whose `train` skips what is not the update's math; see the module docstring.

    `smoothness` > 0 adds CAPS's temporal term to the actor loss (`train.smoothness`): that weight times the
    mean over the batch's real transitions (its first batch_size / (counterfactuals + 1) rows; the counterfactual
    copies pair a state with the next state of another action) of the squared change of the deterministic action
    from the state to its next state, weighed by the state's w_cost: a proxy for the cost of trading, so that a
    cost-free episode is not smoothed and the policy stays conditioned on the cost weight.

    `compile_mode` (`train.compile`): "off" runs `update` eagerly; "default" and "reduce-overhead" run it
    through `torch.compile` (cryptorl/training/compiled.py; on CUDA "reduce-overhead" replays it as CUDA graphs).
    """

    def __init__(self, *args: Any, smoothness: float = 0.0, compile_mode: str = "off", **kwargs: Any) -> None:
        self.smoothness = smoothness
        self.compile_mode = compile_mode
        self.compiled: CompiledUpdate | None = None  # built at the first compiled `train` call
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.critic_target.requires_grad_(False)  # written by Polyak averaging only

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "compiled"]  # rebuilt at the first `train` after a load

    def optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        return optimizers + ([self.ent_coef_optimizer] if self.ent_coef_optimizer is not None else [])

    def _update_learning_rate(self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer) -> None:
        """SB3's schedule; a compiled update's learning rates are tensors, written in place (no recompile)."""
        if self.compiled is None:
            super()._update_learning_rate(optimizers)
            return
        learning_rate = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", learning_rate)
        self.compiled.set_learning_rate(learning_rate)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        if self.compile_mode != "off" and self.compiled is None:
            self.compiled = CompiledUpdate(self, self.compile_mode)
        self._update_learning_rate(self.optimizers())
        rows = []  # (4,) loss rows
        for gradient_step in range(gradient_steps):
            replay = self.replay_buffer
            assert replay is not None  # SB3 builds it in _setup_model
            # The compact replay (cryptorl/training/replay.py) samples dict observations.
            data = cast(DictReplayBufferSamples, replay.sample(batch_size, env=self._vec_normalize_env))
            if self.use_sde:
                self.actor.reset_noise()
            average = gradient_step % self.target_update_interval == 0
            rows.append(self.compiled.step(data, average) if self.compiled else self.update(data, average))
        self._n_updates += gradient_steps
        record_losses(self.logger, self._n_updates, rows, self.ent_coef_optimizer is not None)

    def update(self, data: DictReplayBufferSamples, average: bool) -> torch.Tensor:
        """One gradient step of TQC on one batch, a function of tensors: entropy coefficient, critic, actor,
        then the Polyak average when `average`. Returns the (4,) loss row (`LOSS_KEYS`)."""
        actions_pi, log_prob = self.actor.action_log_prob(data.observations)  # (B, 1), (B,)
        log_prob = log_prob.reshape(-1, 1)
        ent_coef, ent_coef_loss = self._entropy_step(log_prob)
        target_quantiles = self._target_quantiles(data, ent_coef)
        critic_loss = self._critic_step(data, target_quantiles)
        actor_loss = self._actor_step(data, actions_pi, log_prob, ent_coef)
        if average:
            polyak_average(trainable_pairs(self.critic, self.critic_target), self.tau)
            for stat, target_stat in zip(self.batch_norm_stats, self.batch_norm_stats_target, strict=True):
                target_stat.copy_(stat)  # SB3's polyak_update(..., 1.0): a copy
        return torch.stack([ent_coef_loss, ent_coef.reshape(()), actor_loss, critic_loss])

    def _entropy_step(self, log_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The entropy coefficient of this step and its loss (learned ones take their Adam step first, as in
        TQC; a fixed one has loss 0)."""
        if self.ent_coef_optimizer is None or self.log_ent_coef is None:
            return self.ent_coef_tensor, torch.zeros((), device=log_prob.device)
        ent_coef = torch.exp(self.log_ent_coef.detach())
        loss = -(self.log_ent_coef * (log_prob + float(self.target_entropy)).detach()).mean()
        clear_gradients(self.ent_coef_optimizer)
        loss.backward()
        self.ent_coef_optimizer.step()
        return ent_coef, loss.detach()

    @torch.no_grad()
    def _target_quantiles(self, data: DictReplayBufferSamples, ent_coef: torch.Tensor) -> torch.Tensor:
        """TD targets (B, 1, n_target_quantiles): the truncated target mixture, entropy term, reward, discount."""
        discounts = data.discounts if data.discounts is not None else self.gamma
        next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
        next_quantiles = self.critic_target(data.next_observations, next_actions)  # (B, n_critics, n_quantiles)
        n_target_quantiles = self.critic.quantiles_total - self.top_quantiles_to_drop_per_net * self.critic.n_critics
        next_quantiles, _ = torch.sort(next_quantiles.reshape(next_quantiles.shape[0], -1))
        next_quantiles = next_quantiles[:, :n_target_quantiles]
        target = next_quantiles - ent_coef * next_log_prob.reshape(-1, 1)
        target = data.rewards + (1 - data.dones) * discounts * target
        return target.unsqueeze(1)

    def _critic_step(self, data: DictReplayBufferSamples, target_quantiles: torch.Tensor) -> torch.Tensor:
        current_quantiles = self.critic(data.observations, data.actions)  # (B, n_critics, n_quantiles)
        loss = quantile_huber_loss(current_quantiles, target_quantiles)
        clear_gradients(self.critic.optimizer)
        loss.backward()
        self.critic.optimizer.step()
        return loss.detach()

    def _action_change(self, data: DictReplayBufferSamples) -> torch.Tensor:
        """Mean over the real sampled states of w_cost times the squared change of the deterministic action to
        the next state."""
        n_real = data.actions.shape[0] // (getattr(self.replay_buffer, "counterfactuals", 0) + 1)
        observations = _real_rows(data.observations, n_real)
        now = self.actor(observations, deterministic=True)  # (n, 1)
        after = self.actor(_real_rows(data.next_observations, n_real), deterministic=True)  # (n, 1)
        return (observations[W_COST] * (now - after).pow(2)).mean()

    def _actor_step(
        self, data: DictReplayBufferSamples, actions_pi: torch.Tensor, log_prob: torch.Tensor, ent_coef: torch.Tensor
    ) -> torch.Tensor:
        critic = torch.func.functional_call(
            self.critic, detached_parameters(self.critic), (data.observations, actions_pi)
        )
        qf_pi = critic.mean(dim=2).mean(dim=1, keepdim=True)  # (B, 1); gradients reach the actions only
        loss = (ent_coef * log_prob - qf_pi).mean()
        if self.smoothness:
            loss = loss + self.smoothness * self._action_change(data)
        clear_gradients(self.actor.optimizer)
        loss.backward()
        self.actor.optimizer.step()
        return loss.detach()


def _real_rows(observations: dict[str, torch.Tensor], n_rows: int) -> dict[str, torch.Tensor]:
    return {key: value[:n_rows] for key, value in observations.items()}


def quantile_huber_loss(current: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """sb3-contrib's `quantile_huber_loss(current, target, sum_over_quantiles=False)` in fewer passes.

    current (B, n_critics, n) quantiles at fractions tau_j = (j + 0.5) / n, target (B, 1, T): the mean over
    all (b, i, j, k) of |tau_j - 1{target_k < current_ij}| * huber(target_k - current_ij). `F.huber_loss`
    computes the Huber term in one kernel from broadcast views, and the weight is one `where` between
    tau and 1 - tau; both round exactly as sb3-contrib's formulas do.
    """
    n_quantiles = current.shape[-1]
    tau = (torch.arange(n_quantiles, device=current.device, dtype=torch.float32) + 0.5) / n_quantiles
    tau = tau.view(1, 1, -1, 1)  # (1, 1, n, 1)
    pairs = (current.shape[0], current.shape[1], n_quantiles, target.shape[-1])  # (B, n_critics, n, T)
    current_pairs, target_pairs = current.unsqueeze(-1).expand(pairs), target.unsqueeze(-2).expand(pairs)
    huber = F.huber_loss(current_pairs, target_pairs, reduction="none", delta=1.0)
    weight = torch.where(target_pairs < current_pairs.detach(), 1.0 - tau, tau)
    # sum / count is mean's arithmetic, but its backward broadcasts one scalar instead of writing a full
    # tensor of grad / count.
    return (weight * huber).sum() / huber.numel()


def clear_gradients(optimizer: torch.optim.Optimizer) -> None:
    """`optimizer.zero_grad()` (set to None) in a form dynamo traces: `Optimizer.zero_grad` breaks the graph."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            parameter.grad = None


def detached_parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s parameters detached from autograd: run through `torch.func.functional_call`, the module's
    output carries gradients to its inputs only (its weights get none, and no graph reaches them). Unlike
    toggling `requires_grad`, this traces into one compiled graph."""
    return {name: parameter.detach() for name, parameter in module.named_parameters()}


def trainable_pairs(online: nn.Module, target: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(online, target) parameter lists of the online module's trainable parameters, in the same order."""
    pairs = [
        (parameter, target_parameter)
        for parameter, target_parameter in zip(online.parameters(), target.parameters(), strict=True)
        if parameter.requires_grad
    ]
    return [pair[0] for pair in pairs], [pair[1] for pair in pairs]


@torch.no_grad()
def polyak_average(pairs: tuple[list[torch.Tensor], list[torch.Tensor]], tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, SB3's `polyak_update` arithmetic in two fused calls."""
    online, target = pairs
    torch._foreach_mul_(target, 1 - tau)
    torch._foreach_add_(target, online, alpha=tau)


def _host_floats(rows: list[torch.Tensor]) -> np.ndarray:
    """(N, 4) float64 on the host from N (4,) loss rows (one device-to-host copy)."""
    return torch.stack(rows).cpu().numpy().astype(np.float64)
