"""Champion / challenger on real tiny models: the rule both ways, the multi-seed rule, concurrent promotions."""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pandas as pd
import pytest

from cryptorl.champion import registry
from cryptorl.champion.registry import Member
from cryptorl.errors import ConfigError
from cryptorl.champion.live import load_model, net_metrics, slice_metrics, slice_positions
from cryptorl.champion.promotion import promote
from cryptorl.champion.promotion_markdown import promotion_markdown
from cryptorl.storage import ArtifactStore

DATASET = "btcusdt-1h"
NOW = pd.Timestamp("2026-01-05 02:00", tz="UTC")
SEGMENT_1_TEST = "2018-08-11 08:00 UTC .. 2018-08-16 07:00 UTC"
SEGMENT_1_BOUNDS = (pd.Timestamp("2018-08-11 08:00", tz="UTC"), pd.Timestamp("2018-08-16 07:00", tz="UTC"))


@pytest.fixture
def store_url(tmp_path) -> str:
    return f"file://{tmp_path}"


def with_report(challenger, **changes):
    """`challenger` whose audit report is a copy with `changes` (e.g. another audited policy)."""
    store = ArtifactStore(challenger.audit.report.uri.rsplit("/healthy/", 1)[0])
    report = store.read_json(challenger.audit.report) | changes
    ref = store.write_json(f"edited/{uuid.uuid4().hex}/report.json", report)
    return dataclasses.replace(challenger, audit=dataclasses.replace(challenger.audit, report=ref))


def test_an_unhealthy_challenger_or_a_baseline_s_audit_is_never_promoted(trained, store_url):
    # Unhealthy by construction, like the healthy copies: what 256 training steps earn depends on the machine.
    challengers = trained.challengers(store_url)
    unhealthy = with_report(challengers[1, 0], verdict="degenerate")
    baseline = with_report(challengers[1, 1], policy="momentum")
    decision = promote(ArtifactStore(store_url), [unhealthy, baseline])
    assert decision.candidates[0].verdict == "degenerate"
    assert not decision.accepted and decision.version is None and decision.challenger is None
    assert decision.reason == ("no candidate can be promoted (segment 1 seed 0: verdict degenerate (not healthy); "
                               "segment 1 seed 1: its audit judged 'momentum', not the trained agent); "
                               "there is still no live champion")
    assert [c.sharpe for c in decision.candidates] == [None, None]  # excluded before any backtest
    assert registry.version_numbers(ArtifactStore(store_url), DATASET) == []
    assert [d["outcome"] for d in registry.decisions(ArtifactStore(store_url), DATASET)[0]] == ["rejected"]
    markdown = promotion_markdown(decision)
    assert markdown.startswith("# Promotion REJECTED: btcusdt-1h, no live champion\n") and decision.reason in markdown
    assert "| challenger |" not in markdown and "|---|" not in markdown  # nothing to compare: no empty table


def test_the_first_healthy_challenger_becomes_the_champion_with_its_numbers(trained, store_url):
    store, challenger = ArtifactStore(store_url), trained.challengers(store_url)[1, 0]
    decision = promote(store, [challenger], now=NOW)
    audited = store.read_json(challenger.audit.report)["policies"]["trained"]["1"]["sharpe"]
    assert decision.accepted and decision.version == 1 and decision.champion is None
    assert decision.challenger.sharpe == pytest.approx(audited, rel=1e-4)
    assert decision.reason == (f"first live champion: segment 1 seed 0 is healthy and its net test Sharpe "
                               f"{audited:.3f} clears the floor (no floor)")
    champion = registry.require_champion(store, DATASET)
    assert (champion.version, champion.segment, champion.seeds, champion.verdict) == (1, 1, (0,), "healthy")
    assert champion.members == (Member(0, challenger.refs),) and champion.data == challenger.data
    assert champion.promoted_at == NOW
    assert champion.profile == dataclasses.replace(trained.profile, seed=0) and champion.replaces is None
    assert champion.test_sharpe == decision.challenger.sharpe and champion.decision == decision.id
    assert f"{champion.test_first} .. {champion.test_last}" == "2018-08-11 08:00:00+00:00 .. 2018-08-16 07:00:00+00:00"
    assert store.read_json(registry.champion_key(DATASET))["version"] == 1
    [logged] = registry.decisions(store, DATASET)[0]
    assert logged["id"] == decision.id and logged["outcome"] == "accepted" and logged["version"] == 1
    assert logged["challenger"]["sharpe"] == decision.challenger.sharpe and logged["at"] == NOW.isoformat()


@pytest.fixture(scope="module")
def seed_sharpes(trained) -> dict[int, float]:
    """Net test Sharpe of segment 1's two seeds (the two models share that test slice)."""
    store, first, last = ArtifactStore(trained.store_url), *SEGMENT_1_BOUNDS
    return {seed: slice_metrics([load_model(store, trained.real[1, seed].refs, trained.profile, f"seed {seed}")],
                                trained.ohlcv, first, last).sharpe for seed in (0, 1)}


@pytest.fixture(scope="module")
def seed_order(seed_sharpes) -> tuple[int, int]:
    """(better seed, worse seed) of segment 1."""
    better, worse = sorted(seed_sharpes, key=seed_sharpes.get, reverse=True)
    assert seed_sharpes[better] > seed_sharpes[worse]
    return better, worse


def test_the_best_seed_is_the_challenger_and_it_must_beat_the_champion_both_ways(trained, seed_sharpes,
                                                                                  seed_order, store_url):
    store, sharpe, (better, worse) = ArtifactStore(store_url), seed_sharpes, seed_order
    by_seed = promote(store, list(trained.challengers(store_url, dataset="seeds").values())[1:])
    *seeds, ensemble = by_seed.candidates
    assert {candidate.seeds: candidate.sharpe for candidate in seeds} == {(seed,): sharpe[seed] for seed in sharpe}
    assert ensemble.seeds == (0, 1) and ensemble.label == "segment 1 seed ensemble 0, 1"
    best = max(by_seed.candidates, key=lambda candidate: candidate.sharpe)
    assert by_seed.accepted and by_seed.challenger == best

    challengers = trained.challengers(store_url)
    assert promote(store, [challengers[1, worse]], now=NOW).accepted  # v1: the worse seed
    up = promote(store, [challengers[1, better]], now=NOW + pd.Timedelta(hours=5))
    assert up.accepted and up.version == 2 and up.champion.version == 1 and up.champion.age_hours == 5.0
    # The champion is re-scored on the challenger's slice by the same code: here the same slice, so its own number.
    assert (up.challenger.sharpe, up.champion.sharpe) == (sharpe[better], sharpe[worse])
    assert up.reason == (f"segment 1 seed {better} (net test Sharpe {sharpe[better]:.3f}) beats champion v1's "
                         f"{sharpe[worse]:.3f} on the challenger's test slice {SEGMENT_1_TEST}")
    down = promote(store, [challengers[1, worse]], now=NOW + pd.Timedelta(hours=6))
    assert not down.accepted and down.version == 2 and down.champion.sharpe == sharpe[better]
    assert down.reason == (f"segment 1 seed {worse} (net test Sharpe {sharpe[worse]:.3f}) does not beat champion "
                           f"v2's {sharpe[better]:.3f} on the challenger's test slice {SEGMENT_1_TEST}; "
                           "champion v2 stays")
    assert [r.replaces for r in registry.history(store, DATASET)[0]] == [None, 1]
    assert [d["outcome"] for d in registry.decisions(store, DATASET)[0]] == ["accepted", "accepted", "rejected"]


def test_the_champion_is_re_scored_on_a_newer_challenger_s_slice_with_its_own_parts(trained, store_url):
    store, challengers = ArtifactStore(store_url), trained.challengers(store_url)
    promote(store, [challengers[0, 0]], now=NOW)
    champion = registry.require_champion(store, DATASET)
    decision = promote(store, [challengers[1, 0]], now=NOW)
    on_new_slice = slice_metrics([load_model(store, champion.members[0].refs, champion.profile, "v1")], trained.ohlcv,
                                 *SEGMENT_1_BOUNDS)
    assert decision.champion.sharpe == on_new_slice.sharpe != decision.champion.own_sharpe
    assert decision.accepted == (decision.challenger.sharpe > on_new_slice.sharpe)
    assert decision.version == (2 if decision.accepted else 1)


def test_a_model_trained_on_older_data_never_replaces_a_newer_champion(trained, store_url):
    store, challengers = ArtifactStore(store_url), trained.challengers(store_url)
    promote(store, [challengers[1, 0]])
    decision = promote(store, [challengers[0, 0]])
    assert not decision.accepted and decision.version == 1 and decision.champion.sharpe is None  # nothing to compare
    assert ("segment 0 seed 0: its test slice starts 2018-08-06 08:00 UTC, before champion v1's (2018-08-11 08:00 "
            "UTC): a model trained on older data never replaces a newer one") in decision.reason


def test_the_seed_ensemble_is_scored_on_the_mean_of_its_seeds_positions(trained, store_url):
    store, challengers = ArtifactStore(store_url), trained.challengers(store_url)
    decision = promote(store, [challengers[1, 0], challengers[1, 1]], now=NOW)
    ensemble = decision.candidates[-1]
    paths = [slice_positions(load_model(store, challengers[1, seed].refs, trained.profile, f"seed {seed}"),
                             trained.ohlcv, *SEGMENT_1_BOUNDS) for seed in (0, 1)]
    mean = net_metrics(trained.profile, (paths[0][0] + paths[1][0]) / 2, paths[0][1])
    assert ensemble.sharpe == pytest.approx(mean.sharpe, rel=1e-9) and ensemble.audit_sharpe is None
    assert ensemble.model_id == registry.members_id((Member(0, challengers[1, 0].refs), Member(1, challengers[1, 1].refs)))
    champion = registry.require_champion(store, DATASET)
    assert champion.seeds == decision.challenger.seeds  # the winner, one seed or both, is what goes live


@pytest.mark.parametrize("kind", ["file", "memory", "s3"])
def test_two_concurrent_promotions_of_one_challenger_promote_it_once(trained, seed_order, tmp_path, kind, request):
    url = {"file": f"file://{tmp_path}", "memory": f"memory://race-{uuid.uuid4().hex}"}.get(kind) \
        or request.getfixturevalue("s3_store")
    better, worse = seed_order
    challengers = trained.challengers(url)
    promote(ArtifactStore(url), [challengers[1, worse]])  # v1, which the better seed beats
    start = Barrier(2)

    def promote_at_once(_: int):
        start.wait()  # both read v1, re-score it, and race to create v2
        return promote(ArtifactStore(url), [challengers[1, better]])

    with ThreadPoolExecutor(2) as pool:
        decisions = list(pool.map(promote_at_once, range(2)))
    accepted, rejected = sorted(decisions, key=lambda d: not d.accepted)
    assert accepted.accepted and accepted.version == 2 and not rejected.accepted and rejected.version == 2
    # The loser lost the race for v2 and was judged again, against v2 (or, late, read v2 at once).
    assert rejected.lost_races in (0, 1) and "it is already the champion (v2)" in rejected.reason
    store = ArtifactStore(url)
    assert registry.version_numbers(store, DATASET) == [1, 2] and len(registry.decisions(store, DATASET)[0]) == 3


def test_promote_refuses_no_challengers_and_a_mix_of_data_sources(trained, store_url):
    store = ArtifactStore(store_url)
    with pytest.raises(ConfigError, match=r"^promote got no challengers: pass one per seed"):
        promote(store, [])
    mixed = [trained.challengers(store_url, dataset="one")[1, 0], trained.challengers(store_url, dataset="two")[1, 1]]
    with pytest.raises(ConfigError, match=r"challengers of several data sources \(one, two\): promote each"):
        promote(store, mixed)
