"""FoundationFeatureExtractor and the encoder cache: shapes, FiLM, frozen encoder, cache == on the fly, SB3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import TQC

from cryptorl.config import PROFILES
from cryptorl.errors import ConfigError, DataError
from cryptorl.models import (HEADS, CryptoMAE, FiLMLayer, FoundationFeatureExtractor, attach_encoder_cache, build_encoder_cache)

SMOKE = PROFILES["smoke"].mae
D = SMOKE.d_model
SCALARS = {"position": spaces.Box(-1, 1, (1,), np.float32), "w_cost": spaces.Box(0, 10, (1,), np.float32)}
MARKET_SPACE = spaces.Dict({"market": spaces.Box(-np.inf, np.inf, (64, 55), np.float32), **SCALARS})
N_BARS = 200
BAR_INDEX_SPACE = spaces.Dict({"bar_index": spaces.Box(0, N_BARS - 1, (1,), np.float32), **SCALARS})


@pytest.fixture(scope="module")
def encoder() -> CryptoMAE:
    torch.manual_seed(0)
    return CryptoMAE(SMOKE).eval()


@pytest.fixture(scope="module")
def segment() -> tuple[np.ndarray, np.ndarray]:
    """Technical features (T, 50) and HMM context (T, 5) of one slice."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((N_BARS, 50)).astype(np.float32), rng.dirichlet(np.ones(5), N_BARS).astype(np.float32)


def market_observation(segment, bar_index: list[int]) -> dict[str, torch.Tensor]:
    """What a market-window env emits at each bar of `bar_index`."""
    features, context = segment
    market = np.concatenate([features, context], axis=1)  # (T, 55)
    windows = np.stack([market[t - 63: t + 1] for t in bar_index])  # (B, 64, 55)
    batch = len(bar_index)
    return {"market": torch.as_tensor(windows), "position": torch.linspace(-1, 1, batch).unsqueeze(1),
            "w_cost": torch.full((batch, 1), 0.5)}


def test_film_is_the_identity_at_initialisation():
    film = FiLMLayer(context_dim=5, feature_dim=D)
    features, context = torch.randn(2, 64, D), torch.rand(2, 64, 5)
    gamma, beta = film.gamma_beta(context)
    assert gamma.shape == beta.shape == (2, 64, D)
    assert torch.equal(gamma, torch.ones_like(gamma)) and torch.equal(beta, torch.zeros_like(beta))
    assert torch.equal(film(features, context), features)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_gives_features_dim(encoder, segment, head):
    extractor = FoundationFeatureExtractor(MARKET_SPACE, encoder, head=head, features_dim=48)
    assert extractor.features_dim == 48
    assert extractor(market_observation(segment, [70, 80, 199])).shape == (3, 48)


def test_seed_head_projects_every_embedding_plus_position_and_w_cost(encoder):
    extractor = FoundationFeatureExtractor(MARKET_SPACE, encoder)  # head="flatten", features_dim=512
    linear, norm, activation = extractor.project
    assert (linear.in_features, linear.out_features) == (64 * D + 2, 512)
    assert isinstance(norm, torch.nn.LayerNorm) and isinstance(activation, torch.nn.LeakyReLU)


def test_unknown_head_is_a_config_error(encoder):
    with pytest.raises(ConfigError, match=r"unknown feature-extractor head 'lstm': use one of flatten, attention_pool"):
        FoundationFeatureExtractor(MARKET_SPACE, encoder, head="lstm")


def test_observation_space_must_match_the_encoder(encoder):
    space = spaces.Dict({"market": spaces.Box(-1, 1, (64, 54), np.float32), **SCALARS})
    with pytest.raises(ConfigError, match=r"'market' has shape \(64, 54\), the extractor needs \(64, 55\)"):
        FoundationFeatureExtractor(space, encoder)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_gradients_reach_film_and_head_but_not_the_frozen_encoder(encoder, segment, head):
    extractor = FoundationFeatureExtractor(MARKET_SPACE, encoder, head=head, features_dim=16)
    extractor(market_observation(segment, [100, 150])).pow(2).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in extractor.encoder.parameters())
    assert extractor.film.to_gamma_beta.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in [*extractor.head.parameters(), *extractor.project.parameters()])


def test_encoder_stays_in_eval_mode_when_the_policy_trains(encoder):
    extractor = FoundationFeatureExtractor(MARKET_SPACE, encoder).train()
    assert extractor.training and extractor.film.training
    assert not any(m.training for m in extractor.encoder.modules())


@pytest.mark.parametrize("head", sorted(HEADS))
def test_cached_equals_on_the_fly(encoder, segment, head):
    on_the_fly = FoundationFeatureExtractor(MARKET_SPACE, encoder, head=head, features_dim=32)
    cached = FoundationFeatureExtractor(BAR_INDEX_SPACE, encoder, head=head, features_dim=32)
    cached.load_state_dict(on_the_fly.state_dict())  # same trainable weights, same encoder
    cached.attach_cache(build_encoder_cache(encoder, *segment, batch_size=50))
    bars = [63, 64, 120, 199]
    observation = market_observation(segment, bars)
    from_index = {**observation, "bar_index": torch.tensor(bars, dtype=torch.float32).unsqueeze(1)}
    del from_index["market"]
    with torch.no_grad():
        torch.testing.assert_close(cached(from_index), on_the_fly(observation), rtol=1e-5, atol=1e-5)


def test_float16_cache_is_close(encoder, segment):
    full = build_encoder_cache(encoder, *segment)
    half = build_encoder_cache(encoder, *segment, dtype=torch.float16)
    bars = torch.tensor([[70.0], [199.0]])
    assert half.embeddings.dtype == torch.float16
    torch.testing.assert_close(half.lookup(bars)[0], full.lookup(bars)[0], rtol=1e-2, atol=1e-2)


def test_cache_memo_returns_the_last_lookups_until_the_index_changes(encoder, segment):
    cache = build_encoder_cache(encoder, *segment)
    batch, next_batch, third = (torch.tensor([[b], [b + 30.0]]) for b in (70.0, 71.0, 72.0))
    first = cache.lookup(batch)
    assert cache.lookup(next_batch)[0] is not first[0]
    assert all(a is b for a, b in zip(cache.lookup(batch), first))  # one TQC update: obs, next obs, obs again
    batch.add_(5.0)  # changed in place: the memo must not answer for the old bars
    moved = cache.lookup(batch)
    torch.testing.assert_close(moved[0], cache.embeddings[[75, 105]])
    cache.lookup(third)
    assert cache.lookup(next_batch)[0] is not cache.lookup(third)[0] and len(cache._memo) == cache.memo_size
    cache.memo_size = 0
    assert cache.lookup(third)[0] is not cache.lookup(third)[0]


def test_cache_refuses_bars_without_a_full_window(encoder, segment):
    features, context = segment[0].copy(), segment[1]
    features[150] = np.nan
    cache = build_encoder_cache(encoder, features, context)
    assert cache.valid[149] and not cache.valid[150] and not cache.valid[62]
    with pytest.raises(DataError, match=r"bar_index \[62, 150, 400\] has no cached window .*0 <= index < 200"):
        cache.lookup(torch.tensor([[62.0], [100.0], [150.0], [400.0]]))


def test_cached_extractor_without_a_cache_says_how_to_attach_one(encoder, segment):
    extractor = FoundationFeatureExtractor(BAR_INDEX_SPACE, encoder)
    observation = {"bar_index": torch.tensor([[70.0]]), "position": torch.zeros(1, 1), "w_cost": torch.zeros(1, 1)}
    with pytest.raises(ConfigError, match=r"no encoder cache is attached: call attach_encoder_cache"):
        extractor(observation)


class BarIndexEnv(gym.Env):
    """The smallest env emitting bar_index observations: walks through the cached slice."""

    observation_space = BAR_INDEX_SPACE
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.bar, self.position = 63, 0.0
        return self._observation(), {}

    def step(self, action):
        self.bar, self.position = self.bar + 1, float(action[0])
        return self._observation(), 0.0, self.bar == N_BARS - 1, False, {}

    def _observation(self):
        return {"bar_index": np.array([self.bar], np.float32), "position": np.array([self.position], np.float32),
                "w_cost": np.array([0.5], np.float32)}


def test_tqc_trains_from_a_shared_cache_without_touching_the_encoder(encoder, segment):
    policy_kwargs = {"features_extractor_class": FoundationFeatureExtractor, "net_arch": [16], "n_quantiles": 5,
                     "features_extractor_kwargs": {"encoder": encoder, "head": "attention_pool", "features_dim": 16}}
    model = TQC("MultiInputPolicy", BarIndexEnv(), policy_kwargs=policy_kwargs, learning_starts=10, batch_size=8,
                buffer_size=100, seed=0)
    assert attach_encoder_cache(model.policy, build_encoder_cache(encoder, *segment)) == 3  # actor, critic, target
    film_before = model.actor.features_extractor.film.to_gamma_beta.weight.clone()
    model.learn(total_timesteps=30)
    frozen = encoder.state_dict()
    for extractor, tolerance in ((model.actor.features_extractor, 0.0), (model.critic.features_extractor, 0.0),
                                 (model.critic_target.features_extractor, 1e-5)):
        assert not extractor.encoder.training
        for key, value in extractor.encoder.state_dict().items():
            # The target's copy is Polyak-averaged with an identical copy: it moves by float rounding only.
            torch.testing.assert_close(value, frozen[key], rtol=0, atol=tolerance)
    assert not torch.equal(model.actor.features_extractor.film.to_gamma_beta.weight, film_before)
