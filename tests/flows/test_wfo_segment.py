"""The segment flow under an ephemeral Prefect: content-addressed caching, --clean, partial recompute."""

import base64
import io
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from cryptorl.audit.plots import EMBED_MAX_WIDTH
from cryptorl.audit.verdict import Verdict, judge
from cryptorl.config import DEFAULT_DATA_PATH
from cryptorl.champion.promotion import clears
from cryptorl.storage import ArtifactStore
from tests.flows.prefect_helpers import flow_run_artifact, task_states

STAGES = ("split_segment", "fit_hmm", "pretrain_mae", "train_tqc", "audit")
TIMESTEPS = 512  # a short TQC run: the flow tests are about caching, not learning
AUDIT_ARTIFACT_MAX_CHARS = 250_000  # six embedded plots: the UI loads the audit page in well under a second


@pytest.fixture(scope="module")
def run_segment(prefect_harness, tmp_path_factory):
    from flows.wfo_segment import wfo_segment

    storage = f"file://{tmp_path_factory.mktemp('store')}"

    def run(policy: str = "trained", **spec):
        """The flow with the run specification `spec` (smoke, TIMESTEPS, the module's store, unless given)."""
        spec = {"profile": "smoke", "storage": storage, "timesteps": TIMESTEPS, **spec}
        state = wfo_segment(segment=0, spec=spec, policy=policy, return_state=True)
        states = task_states(state.state_details.flow_run_id)
        assert states.pop("publish_audit") == "Completed"  # the UI gets the audit on every run, cached or not
        promoted = policy == "trained"  # a baseline's audit is never a challenger
        assert states.pop("promote", None) == ("Completed" if promoted else None)  # never cached: the champion moves
        return state.result(), states, state.state_details.flow_run_id

    return run


@pytest.fixture(scope="module")
def first_run(run_segment):
    return run_segment()


def test_first_run_computes_and_stores_every_stage(first_run):
    result, states, _ = first_run
    assert states == {name: "Completed" for name in STAGES}
    store = ArtifactStore(result.store_url)
    split_keys = store.list("segments/0/split")
    assert any(k.endswith("features.parquet") for k in split_keys) and any(k.endswith("meta.json") for k in split_keys)
    context = store.read_frame(result.seeds[0].regime.context)
    assert context.shape[1] == 5 and context.iloc[-1].notna().all()
    tqc = result.seeds[0].tqc
    summary = store.read_json(tqc.summary)
    assert summary["timesteps"] == TIMESTEPS and summary["updates"] > 0
    assert store.list(store.key_of(tqc.tensorboard)) and store.list(store.key_of(tqc.checkpoints))
    report = store.read_json(result.seeds[0].audit.report)
    assert report["reasons"] and {"trained", "buy_and_hold", "flat", "momentum"} <= set(report["policies"])
    assert report["seed"] == 0 and report["data"]["dataset"] == "btcusdt-1h" and report["data"]["sha256"]
    series = store.read_frame(result.seeds[0].audit.series)
    assert report["series"] == result.seeds[0].audit.series.uri and "position.trained" in series


def test_first_run_earns_the_verdict_its_own_measurements_give(first_run):
    """The verdict is what the rules give for the numbers the audit measured on this agent, whichever it is."""
    result, _, _ = first_run
    store = ArtifactStore(result.store_url)
    report = store.read_json(result.seeds[0].audit.report)
    measured = {check["measurement"]: check["value"] for check in report["checks"]}
    assert judge(measured) == Verdict(report["verdict"], report["reasons"], report["checks"])
    assert report["verdict"] == result.seeds[0].audit.verdict
    fired = [check for check in report["checks"] if check["fired"]]
    assert bool(fired) == (report["verdict"] != "healthy")
    assert all(report["verdict"] == "collapsed" or check["verdict"] == "degenerate" for check in fired)
    # the checks read the trained agent's real diagnostics and positions, all of them measured
    assert None not in (measured["q_spread_over_noise"], measured["actor_market_attribution"])
    diagnostics = report["diagnostics"]
    assert measured["q_spread_over_noise"] == diagnostics["critic"]["spread_ratio"]
    share = diagnostics["attribution"]["actor_share"]
    assert measured["actor_market_attribution"] == share["technical"] + share["hmm"]
    positions = store.read_frame(result.seeds[0].audit.series)["position.trained"].to_numpy()
    assert measured["position_std_over_test"] == pytest.approx(np.std(positions), rel=1e-6)  # float32 series


def test_the_segment_run_ends_with_a_promotion_decision_shown_in_the_ui(first_run):
    result, _, flow_run_id = first_run
    decision, verdict = result.promotion, result.seeds[0].audit.verdict
    assert decision is not None and decision.dataset == "btcusdt-1h"
    [candidate] = decision.candidates
    # The store starts empty: only a healthy agent that clears the floor (the profile's) becomes champion.
    assert candidate.verdict == verdict and (candidate.floor is None) == (verdict != "healthy")
    assert decision.accepted == (verdict == "healthy" and clears(candidate.sharpe, candidate.floor))
    artifact = flow_run_artifact(flow_run_id, "promotion")
    assert artifact is not None and f"Promotion {decision.outcome.upper()}" in artifact.data
    assert decision.reason in artifact.data


def test_audit_artifacts_are_readable_through_the_prefect_client(first_run):
    result, _, flow_run_id = first_run
    markdown = flow_run_artifact(flow_run_id, "segment-0-audit")
    assert markdown is not None and markdown.type == "markdown"
    assert f"**{result.seeds[0].audit.verdict.upper()}**" in markdown.data
    table = flow_run_artifact(flow_run_id, "segment-0-metrics")
    assert table is not None and table.type == "table" and "buy_and_hold" in str(table.data)
    link = flow_run_artifact(flow_run_id, "segment-0-plot-equity")
    assert link is not None and "equity.png" in str(link.data)


def test_the_audit_artifact_shows_every_plot_inline(first_run):
    """The UI renders data-URI images (browsers do not open the file:// links, which stay beside them)."""
    result, _, flow_run_id = first_run
    markdown = flow_run_artifact(flow_run_id, "segment-0-audit").data
    report = ArtifactStore(result.store_url).read_json(result.seeds[0].audit.report)
    images = dict(re.findall(r"!\[(\w+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown))
    assert set(images) == set(report["plots"]) >= {"equity", "positions", "cost_frontier"}
    for data in images.values():
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and image.width <= EMBED_MAX_WIDTH
    assert all(f"({uri})" in markdown for uri in report["plots"].values())
    assert len(markdown) < AUDIT_ARTIFACT_MAX_CHARS


def test_a_constant_policy_is_judged_collapsed(first_run, run_segment):
    result, states, _ = run_segment(policy="constant:0.85")
    assert states["audit"] == "Completed" and states["train_tqc"] == "Cached"
    report = ArtifactStore(result.store_url).read_json(result.seeds[0].audit.report)
    assert report["verdict"] == "collapsed" and report["policy"] == "constant:0.85"
    assert re.match(r"position_std_across_states \S+ < 0\.05: the same position whatever the state", report["reasons"][0])


def test_more_timesteps_recompute_only_the_agent(first_run, run_segment):
    _, states, _ = run_segment(timesteps=2 * TIMESTEPS)
    assert states == {**{name: "Cached" for name in STAGES[:3]}, "train_tqc": "Completed", "audit": "Completed"}


def test_unchanged_rerun_is_all_cache_hits(first_run, run_segment):
    result, states, _ = run_segment()
    assert states == {name: "Cached" for name in STAGES}
    assert result.seeds[0].regime == first_run[0].seeds[0].regime


def test_the_profiles_seed_given_explicitly_is_the_same_cached_run(first_run, run_segment):
    result, states, _ = run_segment(seeds="0")  # the smoke profile's seed
    assert states == {name: "Cached" for name in STAGES}
    assert [run.seed for run in result.seeds] == [0] and result.seeds == first_run[0].seeds


def test_same_data_at_another_path_still_hits(first_run, run_segment, tmp_path):
    copy = tmp_path / "elsewhere.parquet"
    shutil.copy(DEFAULT_DATA_PATH, copy)
    _, states, _ = run_segment(data=str(copy))
    assert states == {name: "Cached" for name in STAGES}


def test_clean_recomputes_everything(first_run, run_segment):
    result, states, _ = run_segment(clean=True)
    assert states == {name: "Completed" for name in STAGES}
    store = ArtifactStore(result.store_url)
    first, again = first_run[0].seeds[0], result.seeds[0]
    # the split, the HMM and the MAE weights are recomputed bit for bit (same content, same references; the
    # MAE history also records its seconds); a clean run writes where its inputs' fingerprint says, no second copy
    assert result.split == first_run[0].split and again.regime == first.regime
    assert again.mae.checkpoint == first.mae.checkpoint and again.mae.history.uri == first.mae.history.uri
    assert store.read_json(again.tqc.summary)["timesteps"] == TIMESTEPS
    audits = [store.read_json(key) for key in store.list("segments/0/audit") if key.endswith("/report.json")]
    trained = {report["trial"] for report in audits if report["policy"] == "trained"}
    assert sorted(store.uri(key) for key in store.list("trials/btcusdt-1h")) == sorted(trained)  # one per audit


def test_changed_mae_config_recomputes_the_mae_and_the_agent(first_run, run_segment):
    _, states, _ = run_segment(overrides={"mae.max_epochs": "2"})
    assert states == {"split_segment": "Cached", "fit_hmm": "Cached", "pretrain_mae": "Completed",
                      "train_tqc": "Completed", "audit": "Completed"}


def test_changed_hmm_config_recomputes_the_hmm_and_the_agent(first_run, run_segment):
    result, states, _ = run_segment(overrides={"regime.n_inits": "1"})
    assert states == {"split_segment": "Cached", "fit_hmm": "Completed", "pretrain_mae": "Cached",
                      "train_tqc": "Completed", "audit": "Completed"}
    # content-scoped paths never clobber
    assert result.seeds[0].regime.model.uri != first_run[0].seeds[0].regime.model.uri
