"""A registered model's target position on any OHLCV bars: what `cryptorl signal` and promotions compute.

Every step is causal (the position at bar t uses bars <= t only; tests prove it by truncation):
1. the 50 technical features on every bar of the frame (cryptorl/features), scaled with the model's own
   train-fitted scaler (its split's meta.json);
2. the model's HMM forward filter (never the smoother), started at the model's own span start as its
   fit_hmm stage started it, so on the bars the model was audited on the context is the stored one;
3. the model's frozen MAE encoder and its TQC actor, deterministic, at w_cost = 1 (the agent pays exactly
   the real fee), run through the audit's backtest: the observations are the ones training and the audit built.

The held position. The observation carries the position held before each decision; the model's own path
supplies it: flat at the path's first bar, then each bar's target is the next bar's held position. The
path starts at the model's first test bar (the first bar it never trained on; the audit backtested this
path on the test slice), or at the frame's first bar with warm features and a full window when the frame
starts later. The signal starts it at most `SignalConfig.run_in_bars` before the newest bar, so an old
champion on years of new bars costs seconds, not hours. `held` replaces the held position of the last
decision only: the position you really hold, if it differs.

The newest bar. The env steps a decision at bar t into bar t+1 to compute its reward, and the newest bar
has no next bar yet: the market gets one placeholder bar after it (the last row repeated, log-return 0)
that no observation reads, since every window ends at its decision bar.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sb3_contrib import TQC

from cryptorl.audit import BacktestMetrics, Policy, TrainedPolicy, backtest, compute_metrics
from cryptorl.audit.report import HEADLINE_W_COST
from cryptorl.champion.registry import ChampionRecord, ModelRefs, require_champion, seeds_text
from cryptorl.config import Profile, SignalConfig
from cryptorl.data import bars_per_year, dataset_name, load_bars
from cryptorl.data.validation import format_timestamp, parse_bar
from cryptorl.envs import POSITION, MarketData, observes_market
from cryptorl.envs.execution import Execution
from cryptorl.errors import CheckpointError, ConfigError, DataError, ModelDimensionsError
from cryptorl.features import WARMUP_BARS, RobustScaler, technical_features
from cryptorl.models import CryptoMAE, attach_encoder_cache
from cryptorl.models.checkpoint import load_mae_checkpoint
from cryptorl.models.foundation import DIMENSION_FIELDS
from cryptorl.models.rl_adapter import HEADS, FoundationFeatureExtractor
from cryptorl.regime import RegimeModel
from cryptorl.seeding import resolve_device
from cryptorl.storage import ArtifactStore
from cryptorl.training.tqc import encoder_cache_for, load_trained_model


@dataclass(frozen=True, eq=False)
class LiveModel:
    """Everything a registered model needs to act on new bars, loaded and checked."""

    name: str  # e.g. 'btcusdt-1h v3 (model 1a2b3c4d5e6f)', for messages
    profile: Profile
    scaler: RobustScaler
    regime: RegimeModel
    encoder: CryptoMAE
    agent: TQC
    origin: pd.Timestamp  # the first bar of its split's span: where its HMM filter starts
    test_first: pd.Timestamp  # its test slice's first bar: where its own path starts


@dataclass(frozen=True)
class ModelPath:
    """A model's decisions bar by bar, from flat at `timestamps[0]` (see the module docstring)."""

    timestamps: pd.DatetimeIndex  # (n,) decision bars
    positions: np.ndarray  # (n,) target position decided at each bar, held over bar -> next bar
    held: np.ndarray  # (n,) position held before each decision
    log_returns: np.ndarray  # (n - 1,) next-bar log-returns of every decision bar but the last
    context: pd.DataFrame  # (n, 5) the HMM forward-filter context at each decision bar


def load_model(store: ArtifactStore, refs: ModelRefs, profile: Profile, name: str) -> LiveModel:
    """Read every artifact of `refs` (each sha256 checked) and check each network against `profile`'s configs."""
    for ref in (refs.split_features, refs.hmm_context, refs.audit_report):
        store.read_bytes(ref)  # only the hash check: inference recomputes these from the bars
    meta = store.read_json(refs.split_meta)
    regime = RegimeModel.from_bytes(store.read_bytes(refs.hmm_model), source=refs.hmm_model.uri)
    _check(
        name,
        refs.hmm_model.uri,
        _regime_dimensions(regime),
        {
            "regime.columns": tuple(profile.regime.columns),
            "regime.n_states": profile.regime.n_states,
            "regime.covariance_type": profile.regime.covariance_type,
        },
    )
    store.read_bytes(refs.mae_checkpoint)  # the hash check; load_mae_checkpoint reads the file itself
    checkpoint = load_mae_checkpoint(refs.mae_checkpoint.uri)
    _check(
        name,
        refs.mae_checkpoint.uri,
        {
            **{f"mae.{key}": getattr(checkpoint.config, key) for key in DIMENSION_FIELDS},
            "columns": tuple(checkpoint.columns or ()),
            "scaler_fingerprint": checkpoint.scaler_fingerprint,
        },
        {
            **_expected_encoder(profile),
            "columns": tuple(meta["feature_names"]),
            "scaler_fingerprint": meta["scaler_fingerprint"],
        },
    )
    device = resolve_device(profile.train.device)
    agent = load_trained_model(io.BytesIO(store.read_bytes(refs.tqc_model)), device=str(device))
    _check(name, refs.tqc_model.uri, _agent_dimensions(agent, refs.tqc_model.uri), _expected_agent(profile))
    train = meta["slices"]["train"]
    origin = pd.Timestamp(train["first"]) - int(train["start"]) * parse_bar(profile.data.timeframe)
    return LiveModel(
        name,
        profile,
        RobustScaler.from_dict(meta["scaler"]),
        regime,
        checkpoint.model,
        agent,
        origin,
        pd.Timestamp(meta["slices"]["test"]["first"]),
    )


def model_path(
    model: LiveModel,
    ohlcv: pd.DataFrame,
    *,
    start: pd.Timestamp | None = None,
    held: float | None = None,
    source: str = "the data",
) -> ModelPath:
    """The model's decisions on `ohlcv`'s bars from `start` (default: its first test bar) to the last bar.

    `held` replaces the position held before the LAST decision (see the module docstring); `source` names
    the data in errors.
    """
    window = model.profile.mae.window
    if held is not None and not -1.0 <= held <= 1.0:
        raise ConfigError(
            f"held position {held} is outside [-1, 1]: pass the position you hold as a fraction of "
            "full size, e.g. --position 0.5"
        )
    if len(ohlcv) < WARMUP_BARS + window:
        raise DataError(
            f"{source}: {len(ohlcv)} bars is too few: the features need {WARMUP_BARS} warm-up bars and "
            f"the agent a {window}-bar window before its first decision, at least {WARMUP_BARS + window} "
            "bars; pass more history"
        )
    index = ohlcv.index
    filter_from = max(int(index.searchsorted(model.origin)), WARMUP_BARS)
    path_start = model.test_first if start is None else start
    path_from = max(int(index.searchsorted(path_start)), filter_from + window - 1)
    if path_from >= len(index):
        raise DataError(
            f"{source}: the last bar {format_timestamp(index[-1])} is before "
            f"{format_timestamp(path_start)}, where {model.name}'s path starts: pass newer bars"
        )
    features = model.scaler.transform(technical_features(ohlcv))  # (T, 50), NaN on the warm-up rows
    context = model.regime.context(features.iloc[filter_from:])  # (T - filter_from, 5), forward filter only
    rows = index[path_from - (window - 1) :]  # the decision bars and the window before the first one
    step = parse_bar(model.profile.data.timeframe)
    market = MarketData.from_frames(
        _with_placeholder_bar(features.loc[rows], step),
        _with_placeholder_bar(context.loc[rows], step),
        _with_placeholder_bar(ohlcv["close"].loc[rows], step),
        start=window - 1,
        stop=len(rows) + 1,
        device=model.agent.device,
    )
    if not observes_market(model.agent.observation_space):
        attach_encoder_cache(model.agent.policy, encoder_cache_for(model.encoder, market, market.device))
    policy = _held_at_last_bar(TrainedPolicy(model.agent), len(rows), held)
    result = backtest(
        policy,
        market,
        model.profile.env,
        (HEADLINE_W_COST,),
        include_market=observes_market(model.agent.observation_space),
    )
    run = result.runs[HEADLINE_W_COST]
    positions = run.positions.astype(np.float64)  # (n,)
    held_before = np.concatenate([[0.0], positions[:-1]])  # (n,) flat before the first decision
    if held is not None:  # the last target was decided from `held`: the execution rule moves from there too
        held_before[-1] = held
        positions[-1] = Execution.of(model.profile.env, market.epoch_bar).position_numpy(
            run.targets[-1:], np.array([held]), result.bars[-1:]
        )[0]
    # The last decision's log-return is the placeholder bar's 0, not a real one: dropped.
    return ModelPath(index[path_from:], positions, held_before, result.log_returns[:-1], context.loc[index[path_from:]])


def slice_positions(
    model: LiveModel, ohlcv: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp, source: str = "the data"
) -> tuple[np.ndarray, np.ndarray]:
    """(positions (n - 1,), next-bar log-returns (n - 1,)) of the model's decisions at first .. last - 1 over the
    test slice [first, last], from flat at `first`: the audit's backtest at w_cost 1 over that slice."""
    path = model_path(model, ohlcv.loc[:last], start=first, source=source)
    if path.timestamps[0] != first or path.timestamps[-1] != last:
        raise DataError(
            f"{source}: bars {format_timestamp(first)} .. {format_timestamp(last)} (a test slice) are "
            f"not all there with a warm window before them: pass the data source the slice came from"
        )
    return path.positions[:-1], path.log_returns


def net_metrics(profile: Profile, positions: np.ndarray, log_returns: np.ndarray) -> BacktestMetrics:
    """Metrics of holding `positions` at `profile`'s real fee, annualised by its timeframe."""
    return compute_metrics(positions, log_returns, profile.env.fee, bars_per_year(parse_bar(profile.data.timeframe)))


def slice_metrics(
    models: Sequence[LiveModel], ohlcv: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp, source: str = "the data"
) -> BacktestMetrics:
    """Net metrics at the real fee over the test slice [first, last] of one model, or of a seed ensemble: the mean
    of its members' positions, each member deciding from its own path."""
    paths = [slice_positions(model, ohlcv, first, last, source) for model in models]
    return net_metrics(models[0].profile, np.mean([positions for positions, _ in paths], axis=0), paths[0][1])


FLOOR_POSITIONS = {"flat": 0.0, "buy_and_hold": 1.0}  # the constant position of each PromotionConfig.floor baseline


def floor_sharpes(
    ohlcv: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp, fee: float, baselines: tuple[str, ...]
) -> dict[str, float]:
    """Each floor baseline's net Sharpe at `fee` over the test slice [first, last], scored as `slice_metrics` scores
    a model (decisions first .. last - 1 from flat, each earning the next bar's log-return): the audit's numbers."""
    log_returns = np.diff(np.log(ohlcv["close"].loc[first:last].to_numpy(np.float64)))  # (n - 1,)
    per_year = bars_per_year(ohlcv.index[1] - ohlcv.index[0])
    return {
        name: compute_metrics(np.full(len(log_returns), FLOOR_POSITIONS[name]), log_returns, fee, per_year).sharpe
        for name in baselines
    }


# -- checks --------------------------------------------------------------------------------------------------


def _check(name: str, uri: str, found: dict, expected: dict) -> None:
    """One line naming the artifact and every value that differs from what the record's configs say."""
    wrong = [key for key in expected if found.get(key) != expected[key]]
    if wrong:
        details = ", ".join(f"{key}={found.get(key)!r} (expected {expected[key]!r})" for key in wrong)
        raise ModelDimensionsError(
            f"{name}: checkpoint {uri} has {details}: the checkpoint does not match the "
            "configs it is registered with; promote a new champion (run a segment on this data)"
        )


def _regime_dimensions(regime: RegimeModel) -> dict:
    return {
        "regime.columns": regime.columns,
        "regime.n_states": regime.n_states,
        "regime.covariance_type": regime.hmm.covariance_type,
    }


def _expected_encoder(profile: Profile) -> dict:
    return {f"mae.{key}": getattr(profile.mae, key) for key in DIMENSION_FIELDS}


def _agent_dimensions(agent: TQC, uri: str) -> dict:
    """The architecture the saved agent was built with, in config terms."""
    try:
        extractor = agent.policy.actor.features_extractor
        if not isinstance(extractor, FoundationFeatureExtractor):
            raise AttributeError(f"its extractor is a {type(extractor).__name__}")
        head = next((name for name, kind in HEADS.items() if type(extractor.head) is kind), None)
        return {
            **{f"mae.{key}": getattr(extractor.encoder.config, key) for key in DIMENSION_FIELDS},
            "train.head": head,
            "train.features_dim": extractor.project[0].out_features,
            "train.state_passthrough": extractor.state_passthrough,
            "train.current_bar": extractor.current_bar,
            "train.use_encoder_cache": not observes_market(agent.observation_space),
            "train.net_arch": tuple(agent.policy_kwargs["net_arch"]),
            "train.n_quantiles": agent.policy_kwargs["n_quantiles"],
        }
    except (AttributeError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {uri} is not a TQC agent with a FoundationFeatureExtractor ({exc}): "
            "register an agent trained by cryptorl's train_tqc stage"
        ) from None


def _expected_agent(profile: Profile) -> dict:
    train = profile.train
    return {
        **_expected_encoder(profile),
        "train.head": train.head,
        "train.features_dim": train.features_dim,
        "train.state_passthrough": train.state_passthrough,
        "train.current_bar": train.current_bar,
        "train.use_encoder_cache": train.use_encoder_cache,
        "train.net_arch": tuple(train.net_arch),
        "train.n_quantiles": train.n_quantiles,
    }


# -- the path's plumbing -------------------------------------------------------------------------------------


def _with_placeholder_bar(frame: pd.DataFrame | pd.Series, step: pd.Timedelta) -> pd.DataFrame | pd.Series:
    """`frame` plus one row after its last bar, repeating it: the env's bar t+1 after the newest decision."""
    return pd.concat([frame, frame.iloc[[-1]].set_axis(pd.DatetimeIndex([frame.index[-1] + step]))])


def _held_at_last_bar(policy: Policy, n_rows: int, held: float | None) -> Policy:
    """`policy`, deciding the last real bar (market row n_rows - 1) from `held` instead of its own path."""
    if held is None:
        return policy

    def decide(observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        if int(bars[0]) == n_rows - 1:
            observation = {**observation, POSITION: np.full_like(observation[POSITION], held)}
        return policy(observation, bars)

    return decide


# -- the position to hold now --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """The champion's target position on the newest complete bar, with what it was computed from."""

    dataset: str
    champion: str  # identity, e.g. 'btcusdt-1h v3 (model 1a2b3c4d5e6f)'
    version: int
    segment: int
    seeds: tuple[int, ...]  # one, or the members of a seed ensemble (the mean of their positions)
    profile: str
    verdict: str
    test_sharpe: float  # its net test Sharpe at w_cost 1 when it was promoted
    promoted_at: pd.Timestamp
    champion_age_hours: float
    bar: pd.Timestamp  # the newest complete bar (its open time)
    bar_age_hours: float  # how long ago it closed
    position: float  # position to hold in [-1, 1] at w_cost 1 (an ensemble's: the mean of its members')
    held: float  # the position held before this decision
    held_from: str  # "path" (the champion's own path since path_start) or "given"
    path_start: pd.Timestamp
    regime: dict[str, float]  # p_state_0..3 and regime_entropy at `bar` (an ensemble's: its members' mean)

    def to_json(self) -> dict:
        return {
            key: value.isoformat() if isinstance(value, pd.Timestamp) else value
            for key, value in dataclasses.asdict(self).items()
        }


def compute_signal(
    store: ArtifactStore,
    data: str,
    *,
    config: SignalConfig = SignalConfig(),
    held: float | None = None,
    now: pd.Timestamp | None = None,
) -> Signal:
    """The champion of `data`'s source: its target position on the newest complete bar of `data`.

    A bar is complete once its close time (open + bar) is <= `now`. Refuses (one-line errors) no champion,
    data failing validation, a newest complete bar that closed more than `config.max_staleness_hours` ago,
    too few bars, and a champion whose artifacts changed or whose checkpoints do not match its configs.
    """
    config.validate()
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    store.check_exists()
    record = require_champion(store, dataset_name(data))
    step = parse_bar(record.profile.data.timeframe)
    ohlcv = load_bars(data, record.profile.data)
    complete = ohlcv[ohlcv.index + step <= now]  # a bar still forming is never acted on
    if complete.empty:
        raise DataError(f"{data}: no bar closed before {format_timestamp(now)}: check the data and the clock")
    bar_age_hours = (now - (complete.index[-1] + step)) / pd.Timedelta(hours=1)
    if bar_age_hours > config.max_staleness_hours:
        raise DataError(
            f"{data}: the newest complete bar {format_timestamp(complete.index[-1])} closed "
            f"{bar_age_hours:,.1f} h ago, over the {config.max_staleness_hours:g} h limit: append newer "
            "bars (cryptorl data append), or raise --max-staleness (inf for a historical file)"
        )
    start = max(record.test_first, complete.index[-1] - (config.run_in_bars - 1) * step)
    paths = [
        model_path(model, complete, start=start, held=held, source=data)
        for model in load_champion_models(store, record)
    ]  # one per member
    regime = pd.concat([path.context.iloc[-1] for path in paths], axis=1).mean(axis=1)  # states ordered alike
    return Signal(
        record.dataset,
        record.identity,
        record.version,
        record.segment,
        record.seeds,
        record.profile.name,
        record.verdict,
        record.test_sharpe,
        record.promoted_at,
        record.age_hours(now),
        complete.index[-1],
        bar_age_hours,
        float(np.mean([path.positions[-1] for path in paths])),
        float(np.mean([path.held[-1] for path in paths])),
        "path" if held is None else "given",
        paths[0].timestamps[0],
        {name: float(value) for name, value in regime.items()},
    )


def load_champion_models(store: ArtifactStore, record: ChampionRecord) -> list[LiveModel]:
    """The champion's agent, or each member of its seed ensemble, loaded and checked."""
    return [
        load_model(
            store,
            member.refs,
            dataclasses.replace(record.profile, seed=member.seed),
            record.identity if len(record.members) == 1 else f"{record.identity} seed {member.seed}",
        )
        for member in record.members
    ]


def signal_lines(signal: Signal) -> list[str]:
    """What `cryptorl signal` prints: the bar, the position, the regime, the champion."""
    held = (
        f"held {signal.held:+.4f} on the champion's own path since {format_timestamp(signal.path_start)}"
        if signal.held_from == "path"
        else f"you hold {signal.held:+.4f}"
    )
    regime = "  ".join(f"{name} {value:.3f}" for name, value in signal.regime.items())
    return [
        f"bar {format_timestamp(signal.bar)} (the newest complete bar, closed {signal.bar_age_hours:,.1f} h ago)",
        f"target position {signal.position:+.4f} at w_cost {HEADLINE_W_COST:g} ({held})",
        f"regime {regime}",
        f"champion {signal.champion}: segment {signal.segment}, {_seeds(signal)}, profile {signal.profile}, "
        f"verdict {signal.verdict}, net test Sharpe {signal.test_sharpe:.3f}; promoted "
        f"{format_timestamp(signal.promoted_at)}, {signal.champion_age_hours:,.1f} h ago",
    ]


def _seeds(signal: Signal) -> str:
    return f"seed {signal.seeds[0]}" if len(signal.seeds) == 1 else f"seed ensemble {seeds_text(signal.seeds)}"


def signal_markdown(signal: Signal) -> str:
    """The `signal` artifact: the same as `signal_lines`, as a small table."""
    held_from = (
        f"the champion's path since {format_timestamp(signal.path_start)}" if signal.held_from == "path" else "given"
    )
    rows = {
        "bar": f"{format_timestamp(signal.bar)} (closed {signal.bar_age_hours:,.1f} h ago)",
        "target position (w_cost 1)": f"**{signal.position:+.4f}**",
        "held before": f"{signal.held:+.4f} ({held_from})",
        **{name: f"{value:.3f}" for name, value in signal.regime.items()},
        "champion": signal.champion,
        "trained on": f"segment {signal.segment}, {_seeds(signal)}, profile {signal.profile}",
        "verdict, net test Sharpe": f"{signal.verdict}, {signal.test_sharpe:.3f}",
        "promoted": f"{format_timestamp(signal.promoted_at)} ({signal.champion_age_hours:,.1f} h ago)",
    }
    return (
        "\n".join(
            [
                f"# Signal {signal.dataset}: {signal.position:+.4f}",
                "",
                "| | |",
                "|---|---|",
                *(f"| {name} | {value} |" for name, value in rows.items()),
            ]
        )
        + "\n"
    )
