"""Champion / challenger: a healthy challenger replaces the champion only if it earns more, net, on new bars.

The rule, for the candidates of one segment run (one per seed) on one data source:
1. A candidate can be promoted only if its audit judged the trained agent (not a baseline) healthy, and its
   test slice starts no earlier than the newest champion's: a model trained on older data never replaces a
   newer one, and so the champion is always scored on bars it never trained on.
2. Every such candidate is scored by the same code: its net Sharpe at w_cost 1 with the real fee over its own
   test slice, from flat (cryptorl/champion/live.py; its audit's number up to float rounding). With two or more healthy
   seeds their seed ensemble is a candidate too: the mean of their positions, each seed deciding from its own
   path (the seeds' wobbles are independent, so averaging cancels part of them). Each must clear the floor
   (`PromotionConfig.floor`): beat, strictly, the net Sharpe of each floor baseline (flat's is 0, buy & hold's)
   on the same slice. The best candidate that does is the challenger (ties: the lowest seed). The best of N
   seeds is favoured by luck: the DSR of the trials counts it.
3. The live champion is re-scored on the run's test slice with its own scaler, HMM, encoder and agent.
4. The challenger is promoted if its Sharpe is strictly higher. Without a live champion the first challenger
   is promoted; an unhealthy one, or one below the floor, never is.
5. A live champion that is not replaced and whose re-score does not clear the floor is retired: from then on
   there is no live model (cryptorl signal refuses) until a challenger that clears the floor is promoted.

Every decision, accepted, rejected or retiring, is logged with its numbers. A promotion that loses the race for
its version number (another one was promoted meanwhile) is judged again against the new champion.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptorl.audit.report import HEADLINE_W_COST
from cryptorl.audit.verdict import HEALTHY
from cryptorl.champion.live import (
    floor_sharpes,
    load_champion_models,
    load_model,
    net_metrics,
    slice_metrics,
    slice_positions,
)
from cryptorl.champion.registry import (
    ChampionRecord,
    Member,
    ModelRefs,
    create_version,
    current_champion,
    log_decision,
    members_id,
    newest_version,
    retire,
    seeds_text,
)
from cryptorl.config import DataConfig, Profile
from cryptorl.data import dataset_name, load_bars
from cryptorl.data.validation import format_timestamp
from cryptorl.errors import ConfigError, StorageError
from cryptorl.stages import AuditArtifacts, MAEArtifacts, RegimeArtifacts, SegmentArtifacts, TQCArtifacts
from cryptorl.storage import ArtifactRef, ArtifactStore

MAX_RACES = 5  # promotions lost in a row to concurrent ones before giving up (each is judged again)


@dataclass(frozen=True)
class Challenger:
    """One seed of one segment run, as the segment flow holds it: what a promotion judges."""

    data: ArtifactRef  # the data source the run trained on
    profile: Profile  # the run's configs (its seed is `seed`, not profile.seed)
    seed: int
    split: SegmentArtifacts
    regime: RegimeArtifacts
    mae: MAEArtifacts
    tqc: TQCArtifacts
    audit: AuditArtifacts

    @property
    def refs(self) -> ModelRefs:
        return ModelRefs(
            self.split.features,
            self.split.meta,
            self.regime.model,
            self.regime.context,
            self.mae.checkpoint,
            self.tqc.model,
            self.audit.report,
        )


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's numbers (one seed, or the seed ensemble): why it can or cannot be promoted, and its Sharpe."""

    segment: int
    seeds: tuple[int, ...]
    model_id: str
    policy: str  # what its audit judged
    verdict: str
    audit_sharpe: float | None  # its audit's net test Sharpe at w_cost 1
    sharpe: float | None  # re-scored by cryptorl/champion/live.py (None when excluded before scoring)
    floor: dict[str, float] | None  # each floor baseline's net Sharpe on its test slice (None: not scored)
    test_first: pd.Timestamp
    test_last: pd.Timestamp
    excluded: str | None  # why it cannot be promoted; None when it can

    @property
    def seed(self) -> int:
        """The seed, or an ensemble's first."""
        return self.seeds[0]

    @property
    def label(self) -> str:
        if len(self.seeds) == 1:
            return f"segment {self.segment} seed {self.seed}"
        return f"segment {self.segment} seed ensemble {seeds_text(self.seeds)}"


@dataclass(frozen=True)
class ChampionScore:
    """The champion a decision was taken against, and its Sharpe re-scored on the challenger's test slice."""

    version: int
    identity: str
    model_id: str
    segment: int
    seeds: tuple[int, ...]
    profile: str
    promoted_at: pd.Timestamp
    age_hours: float
    own_sharpe: float  # on its own test slice, when it was promoted
    sharpe: float | None  # on the run's test slice (None when not re-scored: the slice is not newer than its own)
    floor: dict[str, float] | None  # each floor baseline's net Sharpe on that slice

    @property
    def below_floor(self) -> bool:
        return self.sharpe is not None and self.floor is not None and not clears(self.sharpe, self.floor)


@dataclass(frozen=True)
class Decision:
    """Which way a promotion went, why, and the numbers."""

    id: str
    dataset: str
    at: pd.Timestamp
    accepted: bool
    reason: str
    candidates: tuple[CandidateScore, ...]
    challenger: CandidateScore | None  # the best promotable candidate
    champion: ChampionScore | None  # the live champion before the decision
    version: int | None  # the live champion's version after the decision (None: there is none)
    retired: int | None  # the version this decision retired
    lost_races: int

    @property
    def outcome(self) -> str:
        return "accepted" if self.accepted else "retired" if self.retired else "rejected"

    def to_json(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self)) | {"outcome": self.outcome}


def promote(store: ArtifactStore, challengers: Sequence[Challenger], *, now: pd.Timestamp | None = None) -> Decision:
    """Judge `challengers` (one segment run, one per seed) against the current champion; log the decision."""
    if not challengers:
        raise ConfigError("promote got no challengers: pass one per seed of the segment run")
    dataset, data = _one_dataset(challengers), _DataCache()
    groups, scores = zip(*_candidates(store, challengers, data), strict=True)  # the champion changes none of them
    decision_id = uuid.uuid4().hex[:12]
    for lost_races in range(MAX_RACES):
        at = now if now is not None else pd.Timestamp.now(tz="UTC").floor("s")
        champion, newest = current_champion(store, dataset), newest_version(store, dataset)
        ranked = [_against(score, newest, live=champion is not None) for score in scores]
        promotable = [i for i, score in enumerate(ranked) if score.excluded is None]
        best = max(promotable, key=lambda i: (ranked[i].sharpe, -ranked[i].seed, -len(ranked[i].seeds)), default=None)
        challenger = None if best is None else ranked[best]
        champion_score = _champion_score(store, champion, scores[0], challengers[0], data, at)
        accepted, retiring, reason = _rule(challenger, ranked, champion_score, scores[0])
        version, retired = (champion.version if champion else None), None
        if accepted:
            assert best is not None and challenger is not None  # _rule accepts only a promotable candidate
            record = _record(dataset, groups[best], challenger, decision_id, at, champion)
            if not create_version(store, record):
                continue  # another promotion created this version first: judge again against it
            version = record.version
        elif retiring:
            assert champion is not None and champion_score is not None  # _rule retires only a live champion
            # False when a concurrent decision retired it first: this one still found it below the floor.
            retire(store, champion, at, decision_id, _retirement(champion_score, _slice_text(scores[0])))
            version, retired = None, champion.version
        decision = Decision(
            decision_id,
            dataset,
            at,
            accepted,
            reason,
            tuple(ranked),
            challenger,
            champion_score,
            version,
            retired,
            lost_races,
        )
        log_decision(store, dataset, at, decision_id, decision.to_json())
        return decision
    raise StorageError(
        f"promotion {decision_id} lost {MAX_RACES} races in a row to concurrent promotions of "
        f"{dataset!r} in {store.url}: run it again once they are done"
    )


# -- scoring ----------------------------------------------------------------------------------------------


class _DataCache:
    """Each data source is loaded once per promotion and per data config."""

    def __init__(self) -> None:
        self.frames: dict[tuple[str, DataConfig], pd.DataFrame] = {}

    def get(self, uri: str, config: DataConfig) -> pd.DataFrame:
        if (uri, config) not in self.frames:
            self.frames[uri, config] = load_bars(uri, config)
        return self.frames[uri, config]


def _candidates(
    store: ArtifactStore, challengers: Sequence[Challenger], data: _DataCache
) -> list[tuple[tuple[Challenger, ...], CandidateScore]]:
    """Each seed's candidate, then the seed ensemble of the healthy seeds when there are two or more."""
    scored = [_score(store, challenger, data) for challenger in challengers]
    candidates: list[tuple[tuple[Challenger, ...], CandidateScore]] = [
        ((challenger,), score) for challenger, (score, _) in zip(challengers, scored, strict=True)
    ]
    healthy = [
        (challenger, score, positions)
        for challenger, (score, positions) in zip(challengers, scored, strict=True)
        if positions is not None
    ]
    if len(healthy) > 1:
        members = tuple(challenger for challenger, _, _ in healthy)
        candidates.append((members, _ensemble_score(members, healthy[0][1], [p for _, _, p in healthy], data)))
    return candidates


def _score(
    store: ArtifactStore, candidate: Challenger, data: _DataCache
) -> tuple[CandidateScore, tuple[np.ndarray, np.ndarray] | None]:
    """The candidate's audit numbers, and when it is healthy its own re-scored Sharpe and its (positions,
    log-returns) on its test slice."""
    report = store.read_json(candidate.audit.report)
    trained = report["policies"].get("trained", {}).get(f"{HEADLINE_W_COST:g}", {})
    first, last = (pd.Timestamp(report["test_slice"][end]) for end in ("first", "last"))
    excluded = (
        f"its audit judged {report['policy']!r}, not the trained agent"
        if report["policy"] != "trained"
        else f"verdict {report['verdict']} (not {HEALTHY})"
        if report["verdict"] != HEALTHY
        else None
    )
    score = CandidateScore(
        int(report["segment"]),
        (candidate.seed,),
        candidate.refs.model_id,
        report["policy"],
        report["verdict"],
        trained.get("sharpe"),
        None,
        None,
        first,
        last,
        excluded,
    )
    if excluded is not None:
        return score, None
    profile = dataclasses.replace(candidate.profile, seed=candidate.seed)
    model = load_model(store, candidate.refs, profile, f"segment {report['segment']} seed {candidate.seed}")
    path = slice_positions(model, data.get(candidate.data.uri, profile.data), first, last, source=candidate.data.uri)
    return _with_sharpe(score, candidate, net_metrics(profile, *path).sharpe, data), path


def _ensemble_score(
    members: tuple[Challenger, ...],
    first_member: CandidateScore,
    paths: list[tuple[np.ndarray, np.ndarray]],
    data: _DataCache,
) -> CandidateScore:
    """The seed ensemble of `members` (healthy, on one test slice): the mean of their positions, scored alike."""
    positions = np.mean([positions for positions, _ in paths], axis=0)  # (n,)
    score = dataclasses.replace(
        first_member,
        seeds=tuple(member.seed for member in members),
        audit_sharpe=None,
        model_id=members_id(tuple(Member(member.seed, member.refs) for member in members)),
    )
    return _with_sharpe(score, members[0], net_metrics(members[0].profile, positions, paths[0][1]).sharpe, data)


def _with_sharpe(score: CandidateScore, run: Challenger, sharpe: float, data: _DataCache) -> CandidateScore:
    """`score` with its re-scored Sharpe and the floor on its test slice, excluded when it does not clear it."""
    floor = floor_sharpes(
        data.get(run.data.uri, run.profile.data),
        score.test_first,
        score.test_last,
        run.profile.env.fee,
        run.profile.promotion.floor,
    )
    excluded = (
        None
        if clears(sharpe, floor)
        else (f"its net test Sharpe {sharpe:.3f} does not clear the floor ({floor_text(floor)})")
    )
    return dataclasses.replace(score, sharpe=sharpe, floor=floor, excluded=excluded)


def clears(sharpe: float, floor: dict[str, float]) -> bool:
    """Whether `sharpe` beats every floor baseline's, strictly (an empty floor is always cleared)."""
    return all(sharpe > baseline for baseline in floor.values())


def floor_text(floor: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in floor.items()) or "no floor"


def _against(score: CandidateScore, newest: ChampionRecord | None, live: bool) -> CandidateScore:
    """`score`, excluded too when the newest champion, `live` or retired, makes it unpromotable (older data, or
    the champion itself)."""
    if score.excluded is not None or newest is None:
        return score
    if score.model_id == newest.model_id:
        return dataclasses.replace(
            score,
            excluded=f"it is already the champion (v{newest.version})"
            if live
            else f"it is champion v{newest.version}, which was retired",
        )
    if score.test_first < newest.test_first:
        return dataclasses.replace(
            score,
            excluded=(
                f"its test slice starts {format_timestamp(score.test_first)}, before champion v{newest.version}'s "
                f"({format_timestamp(newest.test_first)}): a model trained on older data never replaces a newer one"
            ),
        )
    return score


def _champion_score(
    store: ArtifactStore,
    champion: ChampionRecord | None,
    run_score: CandidateScore,
    run: Challenger,
    data: _DataCache,
    at: pd.Timestamp,
) -> ChampionScore | None:
    """The live champion, re-scored with the run's floor on the run's test slice when that slice is newer than
    the champion's own (bars it never trained on)."""
    if champion is None:
        return None
    sharpe, floor = None, None
    if run_score.test_first >= champion.test_first:
        ohlcv = data.get(run.data.uri, champion.profile.data)
        sharpe = slice_metrics(
            load_champion_models(store, champion), ohlcv, run_score.test_first, run_score.test_last, source=run.data.uri
        ).sharpe
        floor = floor_sharpes(
            ohlcv, run_score.test_first, run_score.test_last, champion.profile.env.fee, run.profile.promotion.floor
        )
    return ChampionScore(
        champion.version,
        champion.identity,
        champion.model_id,
        champion.segment,
        champion.seeds,
        champion.profile.name,
        champion.promoted_at,
        champion.age_hours(at),
        champion.test_sharpe,
        sharpe,
        floor,
    )


def _rule(
    best: CandidateScore | None, ranked: list[CandidateScore], champion: ChampionScore | None, run_score: CandidateScore
) -> tuple[bool, bool, str]:
    """(accepted, retire the live champion, why) by the module's rule."""
    if best is not None and champion is None:
        return (
            True,
            False,
            (
                f"first live champion: {best.label} is {HEALTHY} and its net test Sharpe "
                f"{best.sharpe:.3f} clears the floor ({floor_text(best.floor or {})})"
            ),
        )
    slice_text = _slice_text(run_score)
    if best is not None and champion is not None and _beats(best, champion):
        return (
            True,
            False,
            (
                f"{best.label} (net test Sharpe {sharpe_text(best.sharpe)}) beats champion v{champion.version}'s "
                f"{sharpe_text(champion.sharpe)} on the challenger's test slice {slice_text}"
            ),
        )
    why = (
        f"no candidate can be promoted ({'; '.join(f'{s.label}: {s.excluded}' for s in ranked)})"
        if best is None or champion is None
        else f"{best.label} (net test Sharpe {sharpe_text(best.sharpe)}) does not beat champion v{champion.version}'s "
        f"{sharpe_text(champion.sharpe)} on the challenger's test slice {slice_text}"
    )
    if champion is None:
        return False, False, f"{why}; there is still no live champion"
    if champion.below_floor:
        return False, True, f"{why}; {_retirement(champion, slice_text)}"
    return False, False, f"{why}; champion v{champion.version} stays"


def _beats(best: CandidateScore, champion: ChampionScore) -> bool:
    """Whether the challenger's net test Sharpe beats the champion's re-scored on the same slice."""
    return best.sharpe is not None and champion.sharpe is not None and best.sharpe > champion.sharpe


def _slice_text(score: CandidateScore) -> str:
    return f"{format_timestamp(score.test_first)} .. {format_timestamp(score.test_last)}"


def _retirement(champion: ChampionScore, slice_text: str) -> str:
    """Why a champion re-scored below the floor on the run's test slice is retired."""
    return (
        f"champion v{champion.version} is retired: its net Sharpe {sharpe_text(champion.sharpe)} on the newest "
        f"test slice {slice_text} does not clear the floor ({floor_text(champion.floor or {})})"
    )


def _record(
    dataset: str,
    winners: tuple[Challenger, ...],
    score: CandidateScore,
    decision_id: str,
    at: pd.Timestamp,
    champion: ChampionRecord | None,
) -> ChampionRecord:
    first = winners[0]
    return ChampionRecord(
        version=(champion.version if champion else 0) + 1,
        dataset=dataset,
        promoted_at=at,
        decision=decision_id,
        segment=score.segment,
        profile=dataclasses.replace(first.profile, seed=first.seed),
        verdict=score.verdict,
        test_sharpe=float(score.sharpe or 0.0),  # a promoted candidate was scored
        test_first=score.test_first,
        test_last=score.test_last,
        data=first.data,
        members=tuple(Member(winner.seed, winner.refs) for winner in winners),
        replaces=champion.version if champion else None,
    )


def _one_dataset(challengers: Sequence[Challenger]) -> str:
    names = sorted({dataset_name(c.data.uri) for c in challengers})
    if len(names) != 1:
        raise ConfigError(
            f"promote got challengers of several data sources ({', '.join(names)}): promote each segment run on its own"
        )
    return names[0]


def _plain(value: Any) -> Any:
    """JSON-safe: timestamps as ISO strings, tuples as lists."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# -- reporting --------------------------------------------------------------------------------------------


def sharpe_text(value: float | None) -> str:
    """A net Sharpe ratio as the decisions print it."""
    return "n/a" if value is None else f"{value:.3f}"
