"""Stage `audit`: backtest the agent and its baselines on the test slice, diagnose collapse, judge.

Stored under `segments/<n>/audit/<fingerprint>/`: `report.json` (see cryptorl/audit/report.py),
`report.md` (what the Prefect UI shows, every plot embedded inline), `plots/*.png` and `series.parquet`
(per-bar positions and net returns of every policy at the real fee, cryptorl/evaluation/series.py). An audit
of the trained agent with a `Provenance` also records its trial (`trials/<dataset>/<key>.json`,
cryptorl/evaluation/trials.py) for the walk-forward's deflated Sharpe ratio.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from dataclasses import dataclass

import numpy as np
from sb3_contrib import TQC

from cryptorl.audit import diagnostics as diag
from cryptorl.audit import make_policy, metrics_table, plots
from cryptorl.audit.agent import AUDIT_W_COSTS, audit_agent
from cryptorl.audit.backtest import BacktestResult
from cryptorl.audit.policies import best_constant
from cryptorl.audit.probe import multi_horizon_probe
from cryptorl.audit.report import HEADLINE_W_COST, SCHEMA_VERSION, policies_by_w_cost, render_markdown
from cryptorl.config import EnvConfig, MAEConfig, TrainConfig
from cryptorl.envs import MarketData, observes_market, resolve_reward_scale
from cryptorl.evaluation.series import audit_series
from cryptorl.evaluation.trials import Provenance, Trial, record_trial, trial_key
from cryptorl.hashing import code_version, fingerprint
from cryptorl.models import CryptoMAE, attach_encoder_cache
from cryptorl.seeding import seed_everything
from cryptorl.stages.hmm import RegimeArtifacts, load_regime_context
from cryptorl.stages.mae import MAEArtifacts, load_segment_encoder
from cryptorl.stages.split import SegmentArtifacts, load_segment
from cryptorl.stages.tqc import TQCArtifacts, segment_market
from cryptorl.storage import ArtifactRef, ArtifactStore
from cryptorl.training.tqc import encoder_cache_for, load_trained_model

CODE_MODULES = (
    "audit",
    "stages/audit.py",
    "envs",
    "training/tqc.py",
    "training/critic.py",
    "models/rl_adapter.py",
    "evaluation/series.py",
    "evaluation/trials.py",
)
BASELINES = ("buy_and_hold", "flat", "momentum", "probe", "best_constant")


@dataclass(frozen=True)
class AuditArtifacts:
    segment: int
    verdict: str
    report: ArtifactRef
    markdown: ArtifactRef
    series: ArtifactRef


def audit_segment(
    store: ArtifactStore,
    split: SegmentArtifacts,
    regime: RegimeArtifacts,
    mae: MAEArtifacts,
    tqc: TQCArtifacts,
    mae_config: MAEConfig,
    train_config: TrainConfig,
    env_config: EnvConfig,
    seed: int,
    policy: str = "trained",
    provenance: Provenance | None = None,
) -> AuditArtifacts:
    """Audit `policy` (the trained agent by default, or any baseline spec) on the segment's test slice.

    `provenance` (the data source and the configuration) goes into the report; with it, an audit of the
    trained agent records its trial.
    """
    seed_everything(seed)
    segment = load_segment(store, split)
    encoder = load_segment_encoder(mae, mae_config)
    context = load_regime_context(store, regime)  # (T_span, 5)
    market = segment_market(segment, context, train_config.device)
    train, test = (market.with_slice(*segment.slices[name]) for name in ("train", "test"))
    env_config = resolve_reward_scale(env_config, train)  # the reward scale training used
    model = load_agent(store, tqc, encoder, market)

    baselines = {
        spec: make_policy(spec, market=test, seed=seed, train=train, fee=env_config.fee)
        for spec in (*BASELINES, policy)
        if spec != "trained"
    }
    with tempfile.TemporaryDirectory() as tensorboard_dir:
        store.download_prefix(store.key_of(tqc.tensorboard), tensorboard_dir)
        audited = audit_agent(model, tensorboard_dir, test, env_config, seed, baselines, policy)
    results, diagnostics, verdict = audited.results, audited.diagnostics, audited.verdict
    trained = results["trained"]
    diagnostics["hmm"] = dataclasses.asdict(diag.hmm_diagnostics(context.iloc[trained.bars], trained.log_returns))
    diagnostics["mae"] = dataclasses.asdict(
        diag.mae_diagnostics(encoder, segment.slice_frame("test")[segment.feature_names].to_numpy(np.float32), seed)
    )
    state_positions = audited.state_positions
    key = fingerprint(
        split.features.sha256,
        regime.context.sha256,
        mae.checkpoint.sha256,
        tqc.model.sha256,
        train_config,
        env_config,
        seed,
        policy,
        code_version(*CODE_MODULES),
    )
    prefix = f"segments/{split.segment}/audit/{key[:16]}"
    rows = metrics_table(results)
    figures = render_plots(
        results, rows, policy, state_positions, diagnostics, segment.frame["close"].to_numpy()[trained.bars]
    )
    series = store.write_frame(f"{prefix}/series.parquet", audit_series(results, HEADLINE_W_COST))
    trial = (
        None
        if provenance is None or policy != "trained"
        else Trial.of(
            key[:16],
            provenance,
            seed,
            split.segment,
            trained.runs[HEADLINE_W_COST].net_returns,
            HEADLINE_W_COST,
            env_config.fee,
            trained.bars_per_year,
            store.uri(f"{prefix}/report.json"),
        )
    )
    report = {
        "schema_version": SCHEMA_VERSION,
        "segment": split.segment,
        "policy": policy,
        "seed": seed,
        "store": store.url,
        "fee": env_config.fee,
        "bars_per_year": trained.bars_per_year,
        "series": series.uri,
        **provenance_fields(segment.meta, provenance),
        "trial": None if trial is None else store.uri(trial_key(trial.dataset, trial.key)),
        "verdict": verdict.verdict,
        "reasons": verdict.reasons,
        "checks": verdict.checks,
        "test_slice": segment.meta["slices"]["test"],
        "w_costs": list(AUDIT_W_COSTS),
        "policies": policies_by_w_cost(rows),
        "metrics": rows,
        "reward": dataclasses.asdict(results[policy].runs[HEADLINE_W_COST].reward_stats)
        | {"scale": env_config.reward_scale},
        "probe": multi_horizon_probe(train, test, env_config.fee).to_json(),
        "best_constant": dataclasses.asdict(best_constant(train, env_config.fee)),
        "diagnostics": diagnostics,
        "plots": store_plots(store, f"{prefix}/plots", figures),
        "links": {
            "model": tqc.model.uri,
            "checkpoints": tqc.checkpoints,
            "tensorboard": tqc.tensorboard,
            "mae_checkpoint": mae.checkpoint.uri,
            "mae_tensorboard": mae.tensorboard,
        },
    }
    markdown = render_markdown(report, embed_plots(figures))
    artifacts = AuditArtifacts(
        split.segment,
        verdict.verdict,
        store.write_json(f"{prefix}/report.json", report),
        store.write_bytes(f"{prefix}/report.md", markdown.encode()),
        series,
    )
    if trial is not None:
        record_trial(store, trial)  # after the report it points at
    return artifacts


def provenance_fields(split_meta: dict, provenance: Provenance | None) -> dict:
    """The report's `data` (sha256 from the split; source and dataset name when known), `configuration`, `profile`."""
    if provenance is None:
        return {"data": {"sha256": split_meta["data_sha256"]}, "configuration": None, "profile": None}
    return {
        "data": {"sha256": split_meta["data_sha256"], "source": provenance.data.uri, "dataset": provenance.dataset},
        "configuration": provenance.configuration,
        "profile": provenance.profile,
    }


def load_agent(store: ArtifactStore, tqc: TQCArtifacts, encoder: CryptoMAE, market: MarketData) -> TQC:
    """The trained TQC, with an encoder cache over the whole span when it was trained from one."""
    model = load_trained_model(io.BytesIO(store.read_bytes(tqc.model)), device=str(market.device))
    if not observes_market(model.observation_space):
        attach_encoder_cache(model.policy, encoder_cache_for(encoder, market, market.device))
    return model


def render_plots(
    results: dict[str, BacktestResult],
    rows: list[dict],
    policy: str,
    state_positions: np.ndarray,
    diagnostics: dict[str, dict],
    close: np.ndarray,
) -> dict[str, bytes]:
    """The audit plots as PNG bytes, by name (the name is also the stored file's and the artifact's)."""
    audited = results[policy]
    times = audited.timestamps if audited.timestamps is not None else audited.bars
    headline = {name: result.runs[HEADLINE_W_COST].equity for name, result in results.items()}
    critic, attribution = diagnostics["critic"], diagnostics["attribution"]
    return {
        "equity": plots.equity_plot(times, headline, f"Equity on test at w_cost={HEADLINE_W_COST:g}"),
        "positions": plots.position_plot(
            times, audited.runs[HEADLINE_W_COST].positions, close, f"{policy}: position over the test slice"
        ),
        "position_histogram": plots.histogram_plot(state_positions, f"{policy}: positions across test states"),
        "q_vs_action": plots.q_curve_plot(
            np.array(critic["grid"]),
            np.array(critic["q_mean"]),
            np.array(critic["q_p10"]),
            np.array(critic["q_p90"]),
            "trained critic: Q(s, a) over actions",
        ),
        "attribution": plots.attribution_plot(
            {"actor": attribution["actor_share"], "critic": attribution["critic_share"]},
            "trained agent: input attribution",
        ),
        "cost_frontier": plots.cost_frontier_plot(
            rows, "trained", HEADLINE_W_COST, "cost frontier on test: net Sharpe vs turnover per w_cost"
        ),
    }


def store_plots(store: ArtifactStore, prefix: str, figures: dict[str, bytes]) -> dict[str, str]:
    """Store every plot as `<prefix>/<name>.png`; returns {name: uri}."""
    return {name: store.write_bytes(f"{prefix}/{name}.png", png).uri for name, png in figures.items()}


def embed_plots(figures: dict[str, bytes]) -> dict[str, str]:
    """{name: inline markdown image}: report.md shows them in the Prefect UI, report.json keeps only the URIs."""
    return {name: plots.embed_png(png, name) for name, png in figures.items()}
