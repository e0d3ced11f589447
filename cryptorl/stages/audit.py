"""Stage `audit`: backtest the agent and its baselines on the test slice, diagnose collapse, judge.

Stored under `segments/<n>/audit/<fingerprint>/`: `report.json` (see cryptorl/audit/report.py),
`report.md` (what the Prefect UI shows) and `plots/*.png`.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from dataclasses import dataclass

import numpy as np
from sb3_contrib import TQC

from cryptorl.audit import TrainedPolicy, backtest_many, make_policy, metrics_table, plots
from cryptorl.audit import diagnostics as diag
from cryptorl.audit.backtest import BacktestResult
from cryptorl.audit.policies import Policy, best_constant
from cryptorl.audit.probe import fit_probe, score_probe
from cryptorl.audit.report import HEADLINE_W_COST, SCHEMA_VERSION, policies_by_w_cost, render_markdown
from cryptorl.audit.verdict import judge
from cryptorl.config import EnvConfig, MAEConfig, TrainConfig
from cryptorl.envs import MARKET, MarketData
from cryptorl.hashing import code_version, fingerprint
from cryptorl.models import CryptoMAE, attach_encoder_cache
from cryptorl.seeding import seed_everything
from cryptorl.stages.hmm import RegimeArtifacts, load_regime_context
from cryptorl.stages.mae import MAEArtifacts, load_segment_encoder
from cryptorl.stages.split import SegmentArtifacts, load_segment
from cryptorl.stages.tqc import TQCArtifacts, segment_market
from cryptorl.storage import ArtifactRef, ArtifactStore
from cryptorl.training.callbacks import current_ent_coef
from cryptorl.training.tqc import encoder_cache_for, load_trained_model

CODE_MODULES = ("audit", "stages/audit.py", "envs", "training/tqc.py")
AUDIT_W_COSTS = (0.0, 0.5, 1.0, 2.0)
BASELINES = ("buy_and_hold", "flat", "momentum", "probe", "best_constant")
N_STATES = 256  # sampled test states for the diagnostics
SATURATED_POSITION = 0.95
COST_BLIND_W_COSTS = (0.0, 2.0)  # turnover_ratio_w2_w0 = turnover at the second / at the first
NEVER_TRADES = 1e-6  # turnover per bar below which the ratio is not measured (the collapse rules judge it)


@dataclass(frozen=True)
class AuditArtifacts:
    segment: int
    verdict: str
    report: ArtifactRef
    markdown: ArtifactRef


def audit_segment(store: ArtifactStore, split: SegmentArtifacts, regime: RegimeArtifacts, mae: MAEArtifacts,
                  tqc: TQCArtifacts, mae_config: MAEConfig, train_config: TrainConfig, env_config: EnvConfig,
                  seed: int, policy: str = "trained") -> AuditArtifacts:
    """Audit `policy` (the trained agent by default, or any baseline spec) on the segment's test slice."""
    seed_everything(seed)
    segment = load_segment(store, split)
    encoder = load_segment_encoder(mae, mae_config)
    context = load_regime_context(store, regime)  # (T_span, 5)
    market = segment_market(segment, context, train_config.device)
    train, test = (market.with_slice(*segment.slices[name]) for name in ("train", "test"))
    model = load_agent(store, tqc, encoder, market)

    policies: dict[str, Policy] = {"trained": TrainedPolicy(model)}
    policies.update({spec: make_policy(spec, market=test, seed=seed, train=train, fee=env_config.fee)
                     for spec in (*BASELINES, policy) if spec != "trained"})
    results = backtest_many(policies, test, env_config, AUDIT_W_COSTS, include_market=MARKET in model.observation_space.spaces)
    states = diag.sample_states(test, env_config, model.observation_space, N_STATES, seed, AUDIT_W_COSTS)
    diagnostics = model_diagnostics(model, states, store, tqc, results["trained"])
    trained = results["trained"]
    diagnostics["hmm"] = dataclasses.asdict(diag.hmm_diagnostics(
        context.iloc[trained.bars], trained.log_returns))
    diagnostics["mae"] = dataclasses.asdict(diag.mae_diagnostics(
        encoder, segment.slice_frame("test")[segment.feature_names].to_numpy(np.float32), seed))

    state_positions = policies[policy](states, states["bar_index"].reshape(-1).astype(np.int64))  # (N_STATES,)
    verdict = judge(measurements(state_positions, results[policy], diagnostics if policy == "trained" else None))
    key = fingerprint(split.features.sha256, regime.context.sha256, mae.checkpoint.sha256, tqc.model.sha256,
                      train_config, env_config, seed, policy, code_version(*CODE_MODULES))
    prefix = f"segments/{split.segment}/audit/{key[:16]}"
    rows = metrics_table(results)
    report = {
        "schema_version": SCHEMA_VERSION, "segment": split.segment, "policy": policy,
        "verdict": verdict.verdict, "reasons": verdict.reasons, "checks": verdict.checks,
        "test_slice": segment.meta["slices"]["test"], "w_costs": list(AUDIT_W_COSTS),
        "policies": policies_by_w_cost(rows), "metrics": rows,
        "reward": dataclasses.asdict(results[policy].runs[HEADLINE_W_COST].reward_stats)
        | {"scale": env_config.reward_scale},
        "probe": dataclasses.asdict(score_probe(fit_probe(train), test)),
        "best_constant": dataclasses.asdict(best_constant(train, env_config.fee)),
        "diagnostics": diagnostics,
        "plots": store_plots(store, f"{prefix}/plots", results, policy, state_positions, diagnostics,
                             segment.frame["close"].to_numpy()[trained.bars]),
        "links": {"model": tqc.model.uri, "checkpoints": tqc.checkpoints, "tensorboard": tqc.tensorboard,
                  "mae_checkpoint": mae.checkpoint.uri, "mae_tensorboard": mae.tensorboard},
    }
    return AuditArtifacts(split.segment, verdict.verdict, store.write_json(f"{prefix}/report.json", report),
                          store.write_bytes(f"{prefix}/report.md", render_markdown(report).encode()))


def load_agent(store: ArtifactStore, tqc: TQCArtifacts, encoder: CryptoMAE, market: MarketData) -> TQC:
    """The trained TQC, with an encoder cache over the whole span when it was trained from one."""
    model = load_trained_model(io.BytesIO(store.read_bytes(tqc.model)), device=str(market.device))
    if MARKET not in model.observation_space.spaces:
        attach_encoder_cache(model.policy, encoder_cache_for(encoder, market, market.device))
    return model


def model_diagnostics(model: TQC, states: dict[str, np.ndarray], store: ArtifactStore, tqc: TQCArtifacts,
                      trained: BacktestResult) -> dict[str, dict]:
    """What the agent's networks do on sampled test states, and its training's entropy balance."""
    actions = diag.action_diagnostics(model, states)
    with tempfile.TemporaryDirectory() as tmp:
        store.download_prefix(store.key_of(tqc.tensorboard), tmp)
        ent_coef = diag.read_scalar_trajectory(tmp, "train/ent_coef").values
    reward = dataclasses.asdict(trained.runs[HEADLINE_W_COST].reward_stats)
    return {
        "actions": dataclasses.asdict(actions),
        "gsde": dataclasses.asdict(diag.gsde_diagnostics(model, states)),
        "entropy": dataclasses.asdict(diag.entropy_diagnostics(ent_coef or None, current_ent_coef(model), reward,
                                                               actions.entropy_mean)),
        "critic": dataclasses.asdict(diag.critic_diagnostics(model, states)),
        "attribution": dataclasses.asdict(diag.attribution(model, states)),
        "film": dataclasses.asdict(diag.film_diagnostics(model, states)),
    }


def measurements(state_positions: np.ndarray, result: BacktestResult,
                 diagnostics: dict[str, dict] | None) -> dict[str, float | None]:
    """The numbers the verdict rules read; network diagnostics only exist for the trained agent."""
    actor_share = diagnostics["attribution"]["actor_share"] if diagnostics else None
    return {
        "position_std_across_states": float(np.std(state_positions)),
        "position_std_over_test": float(np.std(result.runs[HEADLINE_W_COST].positions)),
        # SATURATED_POSITION is 0.95, not 0.99: gSDE clips the pre-tanh mean at ±2, so a pinned gSDE actor sits at ±tanh(2) = ±0.964.
        "action_saturation": float(np.mean(np.abs(state_positions) > SATURATED_POSITION)),
        "actor_market_attribution": actor_share["technical"] + actor_share["hmm"] if actor_share else None,
        "q_spread_over_noise": diagnostics["critic"]["spread_ratio"] if diagnostics else None,
        "turnover_ratio_w2_w0": turnover_ratio(result),
    }


def turnover_ratio(result: BacktestResult) -> float | None:
    """Turnover at w_cost 2 over turnover at w_cost 0; None when either was not run or nothing trades at 0."""
    low, high = (result.runs.get(w_cost) for w_cost in COST_BLIND_W_COSTS)
    if low is None or high is None or low.metrics.turnover < NEVER_TRADES:
        return None
    return high.metrics.turnover / low.metrics.turnover


def store_plots(store: ArtifactStore, prefix: str, results: dict[str, BacktestResult], policy: str,
                state_positions: np.ndarray, diagnostics: dict[str, dict], close: np.ndarray) -> dict[str, str]:
    """Render and store the audit plots; returns {name: uri}."""
    audited = results[policy]
    times = audited.timestamps if audited.timestamps is not None else audited.bars
    headline = {name: result.runs[HEADLINE_W_COST].equity for name, result in results.items()}
    critic, attribution = diagnostics["critic"], diagnostics["attribution"]
    figures = {
        "equity": plots.equity_plot(times, headline, f"Equity on test at w_cost={HEADLINE_W_COST:g}"),
        "positions": plots.position_plot(times, audited.runs[HEADLINE_W_COST].positions, close,
                                         f"{policy}: position over the test slice"),
        "position_histogram": plots.histogram_plot(state_positions, f"{policy}: positions across test states"),
        "q_vs_action": plots.q_curve_plot(np.array(critic["grid"]), np.array(critic["q_mean"]),
                                          np.array(critic["q_p10"]), np.array(critic["q_p90"]),
                                          "trained critic: Q(s, a) over actions"),
        "attribution": plots.attribution_plot({"actor": attribution["actor_share"],
                                               "critic": attribution["critic_share"]},
                                              "trained agent: input attribution"),
    }
    return {name: store.write_bytes(f"{prefix}/{name}.png", png).uri for name, png in figures.items()}
