"""FoundationFeatureExtractor: the frozen CryptoMAE as an SB3 features extractor, and its encoder cache.

Per observation: the 50 technical columns of `market` (B, W, 55) go through the frozen encoder
(B, W, d); the 5 HMM columns modulate those embeddings through FiLM; a head summarises the window and
appends `position` and `w_cost`; Linear + LayerNorm + LeakyReLU project to `features_dim`; with
`state_passthrough` position and w_cost are appended again after the projection, so the actor's and
critics' MLPs read them directly (features_dim + 2 outputs); with `current_bar` the current bar's own 50
technical features also enter the projection raw, beside the encoder's summary (the masked autoencoder
keeps what helps reconstruct OTHER bars; a bar-level signal with no persistence need not survive it).

Encoder cache. The encoder is frozen, so the embedding of the window ending at bar t never changes
within a segment: `build_encoder_cache` computes all of them once, (T, W, d), with each bar's HMM
context (T, c). An env built for it emits `bar_index` (1,) — the index of the current (last) bar of
the window in the slice the cache was built from — instead of `market`, so neither the encoder nor
the (W, 55) market window runs through training or sits in the replay buffer. The extractor picks its
mode from the observation space: no `market` key -> cached (by `bar_index`), else `market` is encoded on the fly.
The cache is attached after the policy is built (`attach_encoder_cache`), never passed through
policy_kwargs: SB3 pickles those into every saved model, and a cache is hundreds of MB of derived data.
"""

from __future__ import annotations

import copy
from collections import deque

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from cryptorl.errors import ConfigError, DataError
from cryptorl.models.foundation import CryptoMAE, gather_windows, valid_window_ends
from cryptorl.models.layers import AttentionPoolSummary, FiLMLayer, FlattenSummary, MeanPoolSummary, Summary

# What the extractor reads before its head: embeddings (B, W, d), context (B, W, c), current bar (B, F).
Embedded = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# Config string -> summary of the FiLM-modulated window (B, W, d) -> (B, out_dim).
HEADS: dict[str, type[Summary]] = {
    "flatten": FlattenSummary,
    "attention_pool": AttentionPoolSummary,
    "mean_pool": MeanPoolSummary,
}


def make_head(head: str, window: int, d_model: int) -> Summary:
    """The summary module named `head` (a key of HEADS)."""
    if head not in HEADS:
        raise ConfigError(f"unknown feature-extractor head {head!r}: use one of {', '.join(HEADS)}")
    return HEADS[head](window, d_model)


class EncoderCache:
    """Frozen-encoder embeddings of the window ending at each bar of one slice, and the slice's context.

    Shared by every extractor of a policy (actor, critics, target critics): it moves itself, once, to
    the device of the first query, so there is one copy of it per process. One TQC update looks up the
    same two `bar_index` tensors (the batch's observations and next observations) five times, so the
    last `memo_size` lookups are kept, keyed by the tensor object and its in-place version counter
    (0 turns the memo off).
    """

    def __init__(
        self, embeddings: torch.Tensor, context: torch.Tensor, features: torch.Tensor, valid: torch.Tensor
    ) -> None:
        self.embeddings = embeddings  # (T, W, d), float16 or float32
        self.context = context  # (T, c) float32
        self.features = features  # (T, F) float32: each bar's own technical features
        self.valid = valid  # (T,) bool: the window ending at this bar is fully valid
        self.n_bars, self.window, self.d_model = embeddings.shape
        self.context_dim = context.shape[1]
        self.memo_size = 2

    @property
    def memo_size(self) -> int:
        return self._memo.maxlen or 0

    @memo_size.setter
    def memo_size(self, size: int) -> None:
        """Keep the last `size` lookups (0: none); setting it empties the memo."""
        self._memo: deque[tuple[torch.Tensor, int, Embedded]] = deque(maxlen=size)  # (bar_index, _version, lookup)

    def lookup(self, bar_index: torch.Tensor) -> Embedded:
        """Embeddings (B, W, d) float32, context windows (B, W, c) and the bar's features (B, F) for `bar_index`.

        Callers must not modify the returned tensors in place: a repeated lookup returns the same ones. Inside
        `torch.compile` the lookup is the bare gather (no memo, no check: a data-dependent check would break the
        graph); the compiled update checks its batch's indices before the graph runs (`check`).
        """
        if torch.compiler.is_compiling():
            return self._take(_as_index(bar_index))
        for seen, version, embedded in self._memo:
            if seen is bar_index and version == bar_index._version:
                return embedded
        embedded = self._gather(bar_index)
        self._memo.append((bar_index, bar_index._version, embedded))
        return embedded

    def check(self, bar_index: torch.Tensor) -> None:
        """Every index names a cached, fully valid window, else one DataError line (a host sync on CUDA)."""
        self._check(_as_index(bar_index))

    def _check(self, index: torch.Tensor) -> None:
        self.to(index.device)
        if not (((index >= 0) & (index < self.n_bars)).all() and self.valid[index].all()):
            bad = sorted({int(i) for i in index.cpu() if not (0 <= i < self.n_bars and self.valid[i])})[:5]
            raise DataError(
                f"bar_index {bad} has no cached window (needs {self.window} valid bars ending there, "
                f"0 <= index < {self.n_bars}): emit indices of the cached slice's full windows only"
            )

    def to(self, device: torch.device) -> None:
        """Move the cache to `device` (once: later calls on the same device do nothing)."""
        if self.embeddings.device != device:
            self.embeddings, self.context, self.features, self.valid = (
                t.to(device) for t in (self.embeddings, self.context, self.features, self.valid)
            )

    def _gather(self, bar_index: torch.Tensor) -> Embedded:
        index = _as_index(bar_index)
        self._check(index)
        return self._take(index)

    def _take(self, index: torch.Tensor) -> Embedded:
        return self.embeddings[index].float(), gather_windows(self.context, index, self.window), self.features[index]


def _as_index(bar_index: torch.Tensor) -> torch.Tensor:
    return bar_index.reshape(-1).round().long()  # (B,) SB3 hands Box observations over as floats


@torch.no_grad()
def build_encoder_cache(
    encoder: CryptoMAE,
    features: np.ndarray,
    context: np.ndarray,
    *,
    batch_size: int = 512,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> EncoderCache:
    """Encode the window ending at every bar of `features` (T, F), stored on `device` in `dtype`.

    `context` (T, c) are the slice's HMM columns. Memory is T·W·d·(2 or 4) bytes: 17,520 bars (two
    years hourly) at the original system's d=256 is 1.1 GB in float32, 0.57 GB in float16.
    """
    window, d_model = encoder.config.window, encoder.config.d_model
    if len(features) != len(context):
        raise DataError(
            f"encoder cache: features have {len(features)} rows but context has {len(context)}: "
            f"pass the technical and HMM columns of the same slice"
        )
    ends = torch.as_tensor(valid_window_ends(np.concatenate([features, context], axis=1), window))
    compute_device = next(encoder.parameters()).device
    series = torch.as_tensor(np.nan_to_num(features), dtype=torch.float32, device=compute_device)  # (T, F)
    embeddings = torch.zeros(len(features), window, d_model, dtype=dtype, device=device)  # (T, W, d)
    encoder.eval()
    for chunk in ends.split(batch_size):
        windows = gather_windows(series, chunk.to(compute_device), window)  # (b, W, F)
        embeddings[chunk.to(device)] = encoder.encode(windows).to(device=device, dtype=dtype)
    valid = torch.zeros(len(features), dtype=torch.bool, device=device)
    valid[ends.to(device)] = True
    context_tensor = torch.as_tensor(np.nan_to_num(context), dtype=torch.float32, device=device)
    return EncoderCache(embeddings, context_tensor, series.to(device), valid)


class FoundationFeatureExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: frozen CryptoMAE + FiLM(HMM context) + a head, see the module docstring."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        encoder: CryptoMAE,
        head: str = "flatten",
        features_dim: int = 512,
        n_technical: int = 50,
        n_context: int = 5,
        state_passthrough: bool = False,
        current_bar: bool = False,
    ) -> None:
        # With state_passthrough, position and w_cost also bypass the projection: 2 more output features.
        super().__init__(observation_space, features_dim + 2 * state_passthrough)
        self.state_passthrough = state_passthrough
        config = encoder.config
        # Cached mode when the env sends no market window (only bar_index): see the module docstring.
        self.cached = "market" not in observation_space.spaces
        self.n_technical, self.n_context = n_technical, n_context
        _check_observation_space(observation_space, self.cached, config.window, n_technical, n_context)
        if n_technical != config.input_dim:
            raise ConfigError(
                f"extractor n_technical={n_technical} but the encoder reads input_dim="
                f"{config.input_dim} features: use an encoder pretrained on these {n_technical} columns"
            )
        # A private frozen copy: TQC builds actor, critic and target-critic extractors from the same kwargs,
        # and its Polyak update on a *shared* encoder would scale its weights by (1 - tau²) every step
        # (on private copies it averages two identical tensors: a float-rounding change at most).
        self.encoder = copy.deepcopy(encoder).eval().requires_grad_(False)
        self.film = FiLMLayer(n_context, config.d_model)
        self.head = make_head(head, config.window, config.d_model)
        self.current_bar = current_bar
        project_in = self.head.out_dim + n_technical * current_bar + 2
        self.project = nn.Sequential(nn.Linear(project_in, features_dim), nn.LayerNorm(features_dim), nn.LeakyReLU())
        self.cache: EncoderCache | None = None  # a plain attribute: never in the state_dict

    def train(self, mode: bool = True) -> FoundationFeatureExtractor:
        """SB3 calls policy.train() before each update; the frozen encoder must keep dropout off."""
        super().train(mode)
        self.encoder.eval()
        return self

    def attach_cache(self, cache: EncoderCache) -> None:
        """Read embeddings from `cache` (built from the slice whose bar indices the env emits)."""
        config = self.encoder.config
        found = (cache.window, cache.d_model, cache.context_dim)
        if not self.cached or found != (config.window, config.d_model, self.n_context):
            raise ConfigError(
                f"cannot attach an encoder cache of (window, d_model, context)={found} to an extractor "
                f"{'reading' if self.cached else 'without'} bar_index with "
                f"{(config.window, config.d_model, self.n_context)}: build the cache with this "
                f"policy's encoder and emit bar_index from the env"
            )
        self.cache = cache

    def embed(self, observations: dict[str, torch.Tensor]) -> Embedded:
        """Encoder embeddings (B, W, d), HMM context (B, W, c) and the current bar's technical features (B, F),
        from the cache or the market window."""
        if self.cached:
            if self.cache is None:
                raise ConfigError(
                    "the observation carries bar_index but no encoder cache is attached: call "
                    "attach_encoder_cache(model.policy, build_encoder_cache(...)) before learning"
                )
            return self.cache.lookup(observations["bar_index"])
        market = observations["market"]  # (B, W, n_technical + n_context)
        with torch.no_grad():
            embeddings = self.encoder.encode(market[..., : self.n_technical])  # (B, W, d)
        return embeddings, market[..., self.n_technical :], market[:, -1, : self.n_technical]

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        embeddings, context, current = self.embed(observations)
        summary = self.head(self.film(embeddings, context))  # (B, out_dim)
        state = torch.cat([observations["position"], observations["w_cost"]], dim=-1)  # (B, 2)
        inputs = [summary, current, state] if self.current_bar else [summary, state]
        features = self.project(torch.cat(inputs, dim=-1))  # (B, features_dim)
        return torch.cat([features, state], dim=-1) if self.state_passthrough else features


def attach_encoder_cache(policy: nn.Module, cache: EncoderCache) -> int:
    """Attach `cache` to every cached-mode FoundationFeatureExtractor in `policy`; returns how many."""
    extractors = [m for m in policy.modules() if isinstance(m, FoundationFeatureExtractor) and m.cached]
    if not extractors:
        raise ConfigError(
            "the policy has no FoundationFeatureExtractor reading bar_index: add a bar_index key "
            "to the env's observation space to train from an encoder cache"
        )
    for extractor in extractors:
        extractor.attach_cache(cache)
    return len(extractors)


def _check_observation_space(space: spaces.Dict, cached: bool, window: int, n_technical: int, n_context: int) -> None:
    """One line per wrong key: what the extractor needs and what the env declared."""
    needed: dict[str, tuple[int, ...]] = {"position": (1,), "w_cost": (1,)}
    needed.update({"bar_index": (1,)} if cached else {"market": (window, n_technical + n_context)})
    for key, shape in needed.items():
        found = space.spaces[key].shape if key in space.spaces else None
        if found != shape:
            raise ConfigError(
                f"observation space key {key!r} has shape {found}, the extractor needs {shape} "
                f"(window {window}, {n_technical} technical + {n_context} HMM columns): make the "
                f"env and the encoder config agree"
            )
