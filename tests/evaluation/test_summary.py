"""The walk-forward summary from audit reports: rows per (segment, seed), seeds' spread, the stitched
policies with intervals and DSR, and the stored JSON, series and plot behind the markdown."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from cryptorl.audit.metrics import compute_metrics
from cryptorl.evaluation.markdown import summary_markdown
from cryptorl.evaluation.publish import publish_summary
from cryptorl.evaluation.stitch import ENSEMBLE
from cryptorl.evaluation.summary import RunRow, run_rows, sharpe_by_policy, summarize_walk_forward
from cryptorl.evaluation.trials import Provenance, Trial, record_trial, trial_key
from cryptorl.storage import ArtifactRef, ArtifactStore
from tests.evaluation.test_stitch import BAR, FEE, T0, piece

STORE = "memory://wfo-summary-test"
PROVENANCE = Provenance(ArtifactRef("file:///data/BTCUSDT-1h.parquet", "d" * 64), "c" * 64, "smoke")


def audited(segment: int, seed: int, first: pd.Timestamp, store: ArtifactStore) -> tuple[dict, str]:
    """A report as the audit stage writes it, with its series and trial in `store`."""
    series = piece(segment, seed, first, 200, rng_seed=segment)
    prefix = f"segments/{segment}/audit/s{seed}"
    net = series.frame["net.trained"].to_numpy()
    trial = Trial.of(f"s{segment}{seed}", PROVENANCE, seed, segment, net, 1.0, FEE, 8760.0, store.uri(prefix))
    record_trial(store, trial)
    sharpe = {policy: compute_metrics(series.frame[f"position.{policy}"], series.frame["log_return"], FEE).sharpe
              for policy in ("trained", "buy_and_hold")}
    report = {"segment": segment, "seed": seed, "verdict": "collapsed" if seed else "healthy", "fee": FEE,
              "series": store.write_frame(f"{prefix}/series.parquet", series.frame).uri,
              "test_slice": {"first": series.test_first.isoformat(), "last": series.test_last.isoformat()},
              "trial": store.uri(trial_key(trial.dataset, trial.key)),
              "data": {"sha256": "d" * 64, "source": PROVENANCE.data.uri, "dataset": PROVENANCE.dataset},
              "metrics": [{"policy": policy, "w_cost": 1.0, "sharpe": value} for policy, value in sharpe.items()]}
    return report, store.uri(f"{prefix}/report.json")


@pytest.fixture(scope="module")
def summarized():
    store = ArtifactStore(STORE)
    reports = [audited(segment, seed, T0 + segment * 200 * BAR, store) for segment in (0, 1) for seed in (0, 1)]
    runs = [row for segment in (0, 1) for row in run_rows(segment, "Completed", f"http://ui/runs/{segment}",
                                                           [r for r in reports if r[0]["segment"] == segment])]
    runs += run_rows(2, "Failed", None, [])
    summary, stitched = summarize_walk_forward(runs, reports, "smoke", "1h", n_resamples=300)
    return summary, stitched, publish_summary(store, summary, stitched)


def test_stitched_rows_have_intervals_wins_and_the_dsr(summarized):
    summary, stitched, _ = summarized
    rows = {row.policy: row for row in summary.stitched.policies}
    assert list(rows) == ["trained seed 0", "trained seed 1", ENSEMBLE, "buy_and_hold"]
    assert summary.stitched.segments == [0, 1] and summary.stitched.bars == 398
    for row in rows.values():
        assert row.sharpe.low < row.sharpe.estimate < row.sharpe.high and row.segments == 2
        metrics = compute_metrics(stitched.positions(row.policy), stitched.frame["log_return"], FEE)
        assert (row.sharpe.estimate, row.max_drawdown, row.turnover) == (metrics.sharpe, metrics.max_drawdown,
                                                                         metrics.turnover)
    assert rows["buy_and_hold"].versus_buy_and_hold is None and rows["buy_and_hold"].deflated is None
    versus = rows["trained seed 0"].versus_buy_and_hold
    trained, hold = rows["trained seed 0"].sharpe.estimate, rows["buy_and_hold"].sharpe.estimate
    assert versus.estimate == pytest.approx(trained - hold)
    assert versus.low < versus.estimate < versus.high and 0 <= rows["trained seed 0"].beats_buy_and_hold <= 2
    deflated = rows["trained seed 0"].deflated
    assert (deflated.n_trials, summary.stitched.n_trials) == (2, 2)  # one configuration x 2 seeds
    assert deflated.expected_max_sharpe > 0 and deflated.dsr < deflated.psr == rows["trained seed 0"].psr
    assert rows[ENSEMBLE].deflated.n_trials == 2


def test_the_spread_across_seeds_per_segment_and_stitched(summarized):
    summary, _, _ = summarized
    spread = {item["label"]: item for item in summary.seed_spread}
    assert spread["segment 0"]["seeds"] == 2 and spread["segment 2"]["seeds"] == 0
    stitched = [row.sharpe.estimate for row in summary.stitched.policies if row.policy.startswith("trained seed")]
    assert spread["stitched"]["mean"] == pytest.approx(np.mean(stitched))
    assert spread["stitched"]["std"] == pytest.approx(np.std(stitched, ddof=1))


def test_published_json_series_and_inline_plot(summarized):
    summary, stitched, published = summarized
    store = ArtifactStore(STORE)
    content = store.read_json(published.refs["summary.json"])
    assert content["stitched"]["policies"][0]["sharpe"]["estimate"] == summary.stitched.policies[0].sharpe.estimate
    assert content["links"]["series.parquet"] == published.refs["series.parquet"].uri
    frame = store.read_frame(published.refs["series.parquet"])
    np.testing.assert_allclose(frame[f"net.{ENSEMBLE}"], stitched.net(ENSEMBLE, FEE))
    markdown = published.markdown
    assert re.search(r"!\[stitched equity\]\(data:image/png;base64,[A-Za-z0-9+/=]{100,}\)", markdown)
    assert f"[equity.png]({published.refs['equity.png'].uri})" in markdown and len(markdown) < 100_000
    assert "| trained seed 0 | " in markdown and "DSR (Bailey & López de Prado 2014) = PSR(SR0): N = 2" in markdown
    assert "- 1 of 1 junctions contiguous; 0 overlapping bars dropped" in markdown
    assert publish_summary(store, summary, stitched).refs == published.refs  # content-addressed: same place


def test_runs_table_shows_every_seed_the_mean_dispersion_and_buy_and_hold_wins():
    rows = [RunRow(0, "Completed", "http://ui/0", 0, "ok", "s3://b/0/report.json", {"trained": 1.0,
                                                                                   "buy_and_hold": 0.5}),
            RunRow(0, "Completed", "http://ui/0", 1, "collapsed", "s3://b/1/report.json", {"trained": 0.0,
                                                                                          "buy_and_hold": 0.5}),
            RunRow(1, "Failed", "http://ui/1")]
    summary, _ = summarize_walk_forward(rows, [], "smoke", "1h")
    markdown = summary_markdown(summary)
    assert "# Walk-forward summary: 2 segments x 2 seeds, profile smoke" in markdown
    assert "Verdicts: ok 1, collapsed 1, n/a 1" in markdown
    assert "| segment | seed | verdict | Sharpe trained | Sharpe buy and hold |" in markdown  # no link column
    assert "| 0 | 1 | [collapsed](s3://b/1/report.json) | 0.00 | 0.50 |" in markdown
    assert "| **mean** |  |  | 0.50 | 0.50 |" in markdown and "| **std** |  |  | 0.71 | 0.00 |" in markdown
    assert "Runs: segment 0 [Completed](http://ui/0) · segment 1 [Failed](http://ui/1)" in markdown
    assert "- trained beats buy_and_hold (test Sharpe) in 1 of 2 runs" in markdown
    assert "| 1 | n/a | n/a (Failed) | n/a | n/a |" in markdown
    assert "| segment 0 | 2 | 0.50 ± 0.71 |" in markdown
    assert "note: no stitched series" in markdown


def test_summary_without_audit_reports_degrades_to_na():
    summary, stitched = summarize_walk_forward([RunRow(0, "Completed")], [], "smoke", "1h")
    markdown = summary_markdown(summary)
    assert stitched is None and "| 0 | n/a | n/a |" in markdown
    assert "Sharpe vs buy & hold: n/a" in markdown


def test_sharpe_per_policy_is_read_at_the_headline_w_cost():
    rows = [{"policy": "trained", "w_cost": 0.0, "sharpe": 2.0}, {"policy": "trained", "w_cost": 1.0, "sharpe": 0.5},
            {"policy": "buy_and_hold", "w_cost": 1.0, "sharpe": 0.8}, {"policy": "flat", "w_cost": 1.0, "sharpe": None}]
    assert sharpe_by_policy(rows) == {"trained": 0.5, "buy_and_hold": 0.8}
    assert sharpe_by_policy([]) == {}
    assert dataclasses.astuple(run_rows(3, "Crashed", None, [])[0])[:3] == (3, "Crashed", None)


def test_the_summary_goes_to_the_given_store_else_to_the_audits_own(summarized):
    from cryptorl.evaluation.publish import summary_store

    reports = [({"store": "memory://workers-store"}, "memory://workers-store/segments/0/audit/x/report.json")]
    assert summary_store(None, reports).url == "memory://workers-store"
    assert summary_store("memory://asked-for", reports).url == "memory://asked-for"
