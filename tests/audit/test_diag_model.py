"""Policy-collapse diagnostics on tiny TQC models trained as in tests/training/test_tqc.py, plus toy networks."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from cryptorl.audit.diagnostics import (action_diagnostics, attribution, critic_diagnostics, film_diagnostics,
                                        gsde_diagnostics, read_scalar_trajectory, sample_states)
from cryptorl.audit.diagnostics.observations import as_tensors
from cryptorl.envs import MarketData
from cryptorl.errors import ConfigError
from cryptorl.models import FoundationFeatureExtractor, attach_encoder_cache
from cryptorl.training.tqc import build_tqc, encoder_cache_for, load_trained_model, make_env, train_tqc
from tests.tiny import TINY_ENV, TINY_TRAIN, tiny_encoder

ENCODER, ENV, CONFIG = tiny_encoder(), TINY_ENV, TINY_TRAIN
SPAN = MarketData.random(400, seed=0)
TEST = SPAN.with_slice(300, 400)
W_COSTS = (0.0, 0.5, 1.0, 2.0)
N_STATES = 64
CACHE = encoder_cache_for(ENCODER, TEST, torch.device("cpu"))
# Each kind of model the audit may meet: the seed's training choices (gSDE, auto_0.5, w_cost read only through the
# projection, a learned cost) from the encoder cache and from the market window, and the shipped defaults (no gSDE).
SEED_LIKE = {"use_sde": True, "ent_coef": "auto_0.5", "state_passthrough": False, "exact_cost_critic": False}
KINDS = {"cache": SEED_LIKE, "market": {**SEED_LIKE, "use_encoder_cache": False}, "no_sde": {}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return {kind: train_tqc(SPAN.with_slice(100, 300), TEST, ENCODER, dataclasses.replace(CONFIG, **overrides), ENV,
                            seed=3, work_dir=tmp_path_factory.mktemp(kind), progress=False)
            for kind, overrides in KINDS.items()}


def load(trained, kind):
    """A fresh copy of the trained model (tests may edit its weights), with the cache attached if it reads one."""
    model = load_trained_model(trained[kind].model_path, device="cpu")
    if "market" not in model.observation_space.spaces:
        attach_encoder_cache(model.policy, CACHE)
    return model


def states(model, seed=0):
    return sample_states(TEST, ENV, model.observation_space, N_STATES, seed, W_COSTS)


def assert_json_safe(result):
    assert json.loads(json.dumps(dataclasses.asdict(result))) == dataclasses.asdict(result)


def extractors(model):
    return [m for m in model.policy.modules() if isinstance(m, FoundationFeatureExtractor)]


@pytest.mark.parametrize("kind", ["cache", "market"])
def test_sampled_states_follow_the_model_observation_space(trained, kind):
    model = load(trained, kind)
    obs = states(model)
    assert obs.keys() == model.observation_space.spaces.keys()
    assert all(value.dtype == np.float32 and len(value) == N_STATES for value in obs.values())
    assert np.all(np.abs(obs["position"]) <= 1) and obs["position"].std() > 0.3
    assert set(obs["w_cost"].ravel()) <= set(W_COSTS) and len(set(obs["w_cost"].ravel())) > 1
    bars = obs["bar_index"].ravel().astype(int)
    assert bars.min() >= TEST.start and bars.max() <= TEST.stop - 2  # decision bars whose next bar is in the slice
    if kind == "market":
        np.testing.assert_array_equal(obs["market"], TEST.windows(torch.as_tensor(bars)).numpy())
    assert all(np.array_equal(obs[key], states(model)[key]) for key in obs)  # seeded


def test_sampling_refuses_unknown_keys_and_an_empty_cost_list(trained):
    space = load(trained, "cache").observation_space
    with pytest.raises(ConfigError, match="empty w_costs"):
        sample_states(TEST, ENV, space, 4, 0, [])
    space.spaces["funding"] = space.spaces["position"]
    with pytest.raises(ConfigError, match=r"keys \['funding'\]"):
        sample_states(TEST, ENV, space, 4, 0, W_COSTS)


@pytest.mark.parametrize("kind", ["cache", "no_sde"])
def test_action_diagnostics_agree_with_sb3_sampling(trained, kind):
    model = load(trained, kind)
    obs, n_samples = states(model), 64
    result = action_diagnostics(model, obs, n_samples=n_samples)
    assert_json_safe(result)
    assert len(result.histogram_edges) == 22 and math.isclose(sum(result.histogram_fractions), 1.0)
    assert result.position_min <= result.position_mean <= result.position_max and result.position_std > 0
    assert result.pre_tanh_threshold == (2.0 if kind == "cache" else 3.0)  # gSDE clips the mean at ±2
    # SB3's own sampler on the states repeated n_samples times: same per-state spread and -log π, up to MC error.
    actor, tiled = model.policy.actor, {k: v.repeat(n_samples, 1) for k, v in as_tensors(model, obs).items()}
    if actor.use_sde:
        actor.reset_noise(batch_size=n_samples * N_STATES)  # an independent exploration matrix per row
    with torch.no_grad():
        actions, log_prob = actor.action_log_prob(tiled)
    assert result.sampled_std_mean == pytest.approx(actions.reshape(n_samples, N_STATES).std(dim=0).mean().item(),
                                                    rel=0.1)
    assert result.entropy_mean == pytest.approx(-log_prob.mean().item(), abs=0.1)


def test_a_constant_policy_reads_as_collapsed(trained):
    model = load(trained, "cache")
    mu = model.policy.actor.mu[0]  # gSDE wraps the mean layer in a Hardtanh
    with torch.no_grad():
        mu.weight.zero_()
        mu.bias.fill_(math.atanh(0.85))
    obs = states(model)
    result = action_diagnostics(model, obs)
    assert result.position_mean == pytest.approx(0.85, abs=1e-6) and result.position_std < 1e-6
    assert sorted(result.histogram_fractions)[-1] == 1.0 and result.saturated_fraction == 0.0
    shares = attribution(model, obs)
    assert shares.actor_ignores_inputs and set(shares.actor_share.values()) == {0.0}
    assert not shares.critic_ignores_inputs and math.isclose(sum(shares.critic_share.values()), 1.0)


@pytest.mark.parametrize("kind", ["cache", "no_sde"])
def test_gsde_diagnostics_report_the_std_sb3_samples_with(trained, kind):
    model = load(trained, kind)
    obs = states(model)
    result = gsde_diagnostics(model, obs)
    assert_json_safe(result)
    actor = model.policy.actor
    with torch.no_grad():
        actor(as_tensors(model, obs))  # sets the distribution SB3 samples from
    std = actor.action_dist.distribution.stddev  # (N, 1)
    assert result.uses_sde == (kind == "cache")
    assert (result.exploration_std_mean, result.exploration_std_min, result.exploration_std_max) == pytest.approx(
        (std.mean().item(), std.min().item(), std.max().item()), rel=1e-5)
    if actor.use_sde:
        assert result.log_std_mean == pytest.approx(actor.log_std.mean().item()) and result.latent_sde_norm_mean > 0
    else:
        assert result.log_std_min <= result.log_std_mean <= result.log_std_max and result.latent_sde_norm_mean == 0


def test_critic_diagnostics_on_a_trained_critic(trained):
    model = load(trained, "cache")
    obs = states(model)
    result = critic_diagnostics(model, obs, n_actions=11)
    assert_json_safe(result)
    assert result.grid == pytest.approx(np.linspace(-1, 1, 11).tolist())
    assert all(low <= high for low, high in zip(result.q_p10, result.q_p90))
    with torch.no_grad():
        q_flat = model.policy.critic(as_tensors(model, obs), torch.zeros(N_STATES, 1)).mean().item()
    assert result.q_mean[5] == pytest.approx(q_flat, rel=1e-5)  # grid point 5 is a = 0
    assert 0 < result.argmax_mode_fraction <= 1 and result.action_spread_mean > 0


class PeakedCritic(torch.nn.Module):
    """Q(s, a) = -(a - 0.3)² for every state; 2 critics x 5 quantiles spread ±0.5 around it."""

    def forward(self, obs, actions):
        offsets = torch.linspace(-0.5, 0.5, 5)  # (K,) std sqrt(0.125)
        return (-(actions - 0.3) ** 2).unsqueeze(-1) + offsets.expand(len(actions), 2, 5)  # (B, 2, 5)


def test_critic_diagnostics_find_a_known_argmax(trained, monkeypatch):
    model = load(trained, "cache")
    obs = states(model)
    positions = model.predict(obs, deterministic=True)[0].ravel()
    monkeypatch.setattr(model.policy, "critic", PeakedCritic())
    result = critic_diagnostics(model, obs)
    assert result.argmax_mode == pytest.approx(0.3) and result.argmax_mode_fraction == 1.0
    assert result.argmax_std == pytest.approx(0.0, abs=1e-6)
    assert result.action_spread_mean == pytest.approx(1.3**2, rel=1e-5)  # Q(0.3) - Q(-1)
    assert result.quantile_spread_mean == pytest.approx(math.sqrt(0.125), rel=1e-5)
    assert result.spread_ratio == pytest.approx(1.69 / math.sqrt(0.125), rel=1e-5)
    assert result.q_p10 == pytest.approx(result.q_p90) and max(result.q_mean) == pytest.approx(0.0, abs=1e-6)
    assert result.policy_argmax_gap == pytest.approx(np.abs(positions - 0.3).mean(), rel=1e-4)


@pytest.mark.parametrize("kind", ["cache", "market"])
def test_attribution_gives_nothing_to_an_input_the_network_cannot_read(trained, kind):
    model = load(trained, kind)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for extractor in extractors(model):
            extractor.project[0].weight[:, -1] = 0.0  # the projection's w_cost column
            weight = extractor.film.to_gamma_beta.weight  # FiLM starts at identity: give the context a say
            weight.copy_(torch.randn(weight.shape, generator=generator))
    obs = states(model)
    before = model.predict(obs, deterministic=True)[0]
    result = attribution(model, obs)
    assert_json_safe(result)
    for effect, share in ((result.actor_effect, result.actor_share), (result.critic_effect, result.critic_share)):
        assert effect["w_cost"] < 1e-6 and share["w_cost"] < 1e-6
        assert all(effect[group] > 0 for group in ("technical", "hmm", "position"))
        assert math.isclose(sum(share.values()), 1.0)
    assert not result.actor_ignores_inputs and not result.critic_ignores_inputs
    assert all("embed" not in vars(extractor) for extractor in extractors(model))  # the wrapper is gone
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], before)


def test_film_is_the_identity_at_initialisation_and_moves_per_regime():
    env = make_env(TEST, CONFIG, ENV, 4, seed=0, device=torch.device("cpu"))
    model = build_tqc(env, ENCODER, CONFIG, seed=0, tensorboard_dir=None)
    attach_encoder_cache(model.policy, CACHE)
    obs = states(model)
    fresh = film_diagnostics(model, obs)
    assert_json_safe(fresh)
    for stats in (fresh.actor, fresh.critic):
        assert stats.gamma_dev_mean == 0.0 and stats.beta_abs_mean == 0.0 and stats.gamma_regime_std == 0.0
        assert sum(stats.regime_counts) == N_STATES
    with torch.no_grad():
        actor_film = model.policy.actor.features_extractor.film.to_gamma_beta
        actor_film.weight.normal_(generator=torch.Generator().manual_seed(0))
    moved = film_diagnostics(model, obs)
    assert moved.actor.gamma_dev_mean > 0 and moved.actor.beta_abs_mean > 0
    assert moved.actor.gamma_regime_std > 0 and all(value > 0 for value in moved.actor.gamma_dev_by_regime)
    assert moved.critic == fresh.critic  # the critic has its own FiLM layer


def test_ent_coef_trajectory_reads_from_a_training_run(trained):
    series = read_scalar_trajectory(trained["cache"].tensorboard_dir, "train/ent_coef")
    assert series.steps == sorted(series.steps) and len(series.steps) >= 2
    assert series.values[0] == pytest.approx(0.5)  # ent_coef "auto_0.5" starts at 0.5
    assert all(0 < value <= 0.5 for value in series.values)


def test_diagnostics_refuse_degenerate_settings(trained):
    model = load(trained, "cache")
    obs = states(model)
    with pytest.raises(ConfigError, match="n_samples=1: use at least 2"):
        action_diagnostics(model, obs, n_samples=1)
    with pytest.raises(ConfigError, match="n_repeats=0: use at least 1"):
        attribution(model, obs, n_repeats=0)
    with pytest.raises(ConfigError, match="n_actions >= 2"):
        critic_diagnostics(model, obs, n_actions=1)
