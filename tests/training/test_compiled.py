"""The compiled update (`train.compile`) trains the parameters the eager update trains, up to float rounding.

Inductor on CPU compiles the smoke model's update; with `fallback_random` its random draws are eager torch's,
so both learners see the same batches, actions and noise, and only the fused kernels' rounding differs.
Measured here: the worst parameter's gap after 8 updates was 0.31 % of how far the updates moved it (the
target critic's projection; the eager learner uses fused Adam, the compiled one inductor's); the bound is 2 %.
"""

import dataclasses

import pytest
import torch

from cryptorl.config import get_profile
from cryptorl.envs import MarketData
from cryptorl.errors import DataError
from cryptorl.models import CryptoMAE, attach_encoder_cache
from cryptorl.seeding import seed_everything
from cryptorl.training.compiled import CompiledUpdate
from cryptorl.training.learner import LeanTQC
from cryptorl.training.tqc import build_tqc, encoder_cache_for, make_env

PROFILE = get_profile("smoke")
MARKET = MarketData.random(900, seed=1).with_slice(100, 900)
UPDATES = 8
BOUND = 0.02  # of the distance the updates moved each parameter


def _learner(compile_mode: str) -> LeanTQC:
    """The smoke model, its replay filled by an eager rollout; then its update switched to `compile_mode`."""
    seed_everything(0)
    config = dataclasses.replace(PROFILE.train, learning_starts=PROFILE.train.batch_size, device="cpu")
    encoder = CryptoMAE(PROFILE.mae)
    env = make_env(MARKET, config, PROFILE.env, config.n_envs, seed=0, device=torch.device("cpu"))
    model = build_tqc(env, encoder, config, seed=0, tensorboard_dir=None)
    attach_encoder_cache(model.policy, encoder_cache_for(encoder, MARKET, torch.device("cpu")))
    model.learn(total_timesteps=config.batch_size + 2 * config.n_envs)
    assert isinstance(model, LeanTQC)
    model.compile_mode = compile_mode
    return model


def _parameters(model: LeanTQC) -> dict[str, torch.Tensor]:
    return {**{n: p.detach().clone() for n, p in model.policy.named_parameters()}, "log_ent_coef": model.log_ent_coef}


@pytest.fixture(scope="module")
def trained() -> dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], LeanTQC]]:
    """Per mode: the parameters before and after UPDATES updates from the same state and seed, and the model."""
    runs = {}
    # Scalar C++ kernels (simdlen 1): the same generated code whatever vector ISA the CPU (or
    # ATEN_CPU_CAPABILITY) offers, so the bound does not depend on the machine's SIMD width.
    with torch._inductor.config.patch({"fallback_random": True, "cpp.simdlen": 1}):
        for mode in ("off", "default"):
            model = _learner(mode)
            before = _parameters(model)
            seed_everything(7)
            model.train(UPDATES, PROFILE.train.batch_size)
            runs[mode] = (before, _parameters(model), model)
    return runs


def test_compiled_update_stays_within_rounding_of_the_eager_update(trained):
    (start, eager, _), (start_compiled, compiled, model) = trained["off"], trained["default"]
    assert isinstance(model.compiled, CompiledUpdate) and model.compiled.batch is not None
    assert all(torch.equal(start[name], start_compiled[name]) for name in start)
    moved_names = [name for name in start if not torch.equal(start[name], eager[name])]
    assert len(moved_names) > 20  # actor, critics, their targets, the entropy coefficient
    for name in moved_names:
        moved = (eager[name] - start[name]).abs().max().item()
        gap = (eager[name] - compiled[name]).abs().max().item()
        assert gap <= BOUND * moved, f"{name}: compiled differs by {gap:.2e}, the updates moved it {moved:.2e}"


def test_compiled_update_logs_what_the_eager_update_logs(trained):
    eager, compiled = trained["off"][2].logger.name_to_value, trained["default"][2].logger.name_to_value
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef", "train/ent_coef_loss"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-3)
    assert isinstance(trained["default"][2].actor.optimizer.param_groups[0]["lr"], torch.Tensor)
    assert compiled["train/learning_rate"] == eager["train/learning_rate"]


def test_compiled_update_checks_bar_indices_before_the_graph(trained):
    model = trained["default"][2]
    data = model.replay_buffer.sample(PROFILE.train.batch_size)
    data.observations["bar_index"][0] = -1.0
    with pytest.raises(DataError, match=r"bar_index \[-1\] has no cached window"):
        model.compiled.step(data, average=True)


def test_a_compiled_learner_saves_and_loads(trained, tmp_path):
    model = trained["default"][2]
    model.save(tmp_path / "model.zip")
    loaded = LeanTQC.load(tmp_path / "model.zip", env=model.get_env(), device="cpu")
    assert loaded.compile_mode == "default" and loaded.compiled is None
    actor_state = model.actor.state_dict()
    assert all(torch.equal(tensor, actor_state[name]) for name, tensor in loaded.actor.state_dict().items())
