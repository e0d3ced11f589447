"""The champion registry: which model is live per data source, how it got there, and every decision taken.

Layout in the artifact store, per data source name (`cryptorl.data.dataset_name`, e.g. `btcusdt-1h`):

    registry/<dataset>/versions/000001.json       one record per promotion, created exclusively, never rewritten
    registry/<dataset>/retired/000001.json        the retirement of that version, if it was retired (exclusive too)
    registry/<dataset>/champion.json              the newest version's record and its retirement, if any (a
                                                  pointer for people and tools)
    registry/<dataset>/decisions/<utc>-<id>.json  every promotion decision, accepted or rejected, with its numbers

The live champion is the newest version unless it was retired: a retrain re-scored it on newer bars and it
fell below the promotion floor (cryptorl/champion/promotion.py). Then there is no live model until a challenger that
clears the floor is promoted as the next version. A promotion judged against version n creates version n + 1 with
`ArtifactStore.create_exclusive`, so of two promotions judged against the same champion exactly one
creates it; the other finds the name taken and is judged again against the new champion
(cryptorl/champion/promotion.py). The versions are the registry's truth and its append-only history;
`champion.json` mirrors the newest one: every writer re-reads the newest version after writing it, so
the last write always names the newest version. Decisions have unique names: appending one never races.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cryptorl.config import STAGE_CLASSES, STAGE_NAMES, Profile
from cryptorl.errors import ArtifactNotFoundError, CheckpointError
from cryptorl.hashing import sha256_bytes
from cryptorl.storage import ArtifactRef, ArtifactStore
from cryptorl.storage import one_line as _one_line

# 2: `members` (one model, or a seed ensemble), each artifact as a key in the store (so a copied, restored or
# re-prefixed store still reads) with its sha256. 1 (one `seed`, absolute `refs` URIs) is read too, its URIs
# rebased onto the store that holds the record.
SCHEMA = "cryptorl.champion/2"
SCHEMA_V1 = "cryptorl.champion/1"
_RECORD_FIX = "restore it from a backup of the store, or delete it"
PREFIX = "registry"
_VERSION_FILE = re.compile(r"^(\d{6})\.json$")


@dataclass(frozen=True)
class ModelRefs:
    """Every stored artifact a model is made of, each with its sha256 (checked on every load)."""

    split_features: ArtifactRef  # the segment span's scaled features (its first bar is where the HMM filter starts)
    split_meta: ArtifactRef  # slices, and the train-fitted scaler the features must be scaled with
    hmm_model: ArtifactRef
    hmm_context: ArtifactRef
    mae_checkpoint: ArtifactRef  # the frozen encoder
    tqc_model: ArtifactRef  # the agent
    audit_report: ArtifactRef

    @property
    def model_id(self) -> str:
        """A short identity of the agent: the first 12 hex digits of its sha256."""
        return self.tqc_model.sha256[:12]


@dataclass(frozen=True)
class Member:
    """One trained agent of a champion: its seed and its artifacts."""

    seed: int
    refs: ModelRefs


def members_id(members: tuple[Member, ...]) -> str:
    """A short identity: the agent's (first 12 hex digits of its sha256), or of a seed ensemble, 12 hex digits of
    the sha256 of its members' agents."""
    if len(members) == 1:
        return members[0].refs.model_id
    return sha256_bytes(",".join(member.refs.tqc_model.sha256 for member in members).encode())[:12]


@dataclass(frozen=True)
class ChampionRecord:
    """One promotion: the model that became the champion and the numbers it was promoted on.

    A champion is one agent or a seed ensemble: the mean of its members' positions, each member deciding from
    its own path (what splitting the account equally among them would hold).
    """

    version: int
    dataset: str
    promoted_at: pd.Timestamp  # UTC
    decision: str  # id of the decision that promoted it (registry/<dataset>/decisions/)
    segment: int
    profile: Profile  # every stage config the networks were built with; profile.seed is the first member's
    verdict: str
    test_sharpe: float  # net Sharpe at w_cost 1 with the real fee on its own test slice (re-scored)
    test_first: pd.Timestamp  # its test slice: the first bar it never trained on ...
    test_last: pd.Timestamp  # ... and the last one
    data: ArtifactRef  # the data source it was trained on, with the sha256 it had then
    members: tuple[Member, ...]
    replaces: int | None  # the version it replaced

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(member.seed for member in self.members)

    @property
    def model_id(self) -> str:
        return members_id(self.members)

    @property
    def identity(self) -> str:
        """E.g. 'btcusdt-1h v3 (model 1a2b3c4d5e6f)', or '... (ensemble 1a2b3c4d5e6f of seeds 0, 1)'."""
        what = "model" if len(self.members) == 1 else "ensemble"
        seeds = "" if len(self.members) == 1 else f" of seeds {seeds_text(self.seeds)}"
        return f"{self.dataset} v{self.version} ({what} {self.model_id}{seeds})"

    def age_hours(self, now: pd.Timestamp) -> float:
        return (now - self.promoted_at) / pd.Timedelta(hours=1)

    def to_json(self, store: ArtifactStore) -> dict[str, Any]:
        """The record as it lies in `store`: artifacts by key (relative to the store) and sha256."""
        return {
            "schema": SCHEMA,
            "version": self.version,
            "dataset": self.dataset,
            "promoted_at": self.promoted_at.isoformat(),
            "decision": self.decision,
            "segment": self.segment,
            "profile": self.profile.name,
            "verdict": self.verdict,
            "test_sharpe": self.test_sharpe,
            "test_slice": {"first": self.test_first.isoformat(), "last": self.test_last.isoformat()},
            "data": {"uri": self.data.uri, "sha256": self.data.sha256},  # the data source: outside the store
            "members": [
                {
                    "seed": member.seed,
                    "refs": {
                        name: {"key": store.key_of(ref), "sha256": ref.sha256}
                        for name, ref in vars(member.refs).items()
                    },
                }
                for member in self.members
            ],
            "configs": {name: dataclasses.asdict(getattr(self.profile, name)) for name in STAGE_NAMES},
            "replaces": self.replaces,
        }

    @classmethod
    def from_json(cls, value: Any, source: str, store: ArtifactStore) -> ChampionRecord:
        """Rebuild a record written by `to_json` into `store`; `source` names it in errors."""
        try:
            if not isinstance(value, dict):
                raise ValueError(f"it holds a JSON {type(value).__name__}, not an object")
            if value.get("schema") not in (SCHEMA, SCHEMA_V1):
                raise ValueError(f"schema {value.get('schema')!r}, expected {SCHEMA!r}")
            members = tuple(
                Member(
                    int(member["seed"]),
                    ModelRefs(**{name: _ref_of(ref, store) for name, ref in member["refs"].items()}),
                )
                for member in (value["members"] if value["schema"] == SCHEMA else [value])
            )
            return cls(
                version=int(value["version"]),
                dataset=str(value["dataset"]),
                promoted_at=pd.Timestamp(value["promoted_at"]),
                decision=str(value["decision"]),
                segment=int(value["segment"]),
                profile=profile_from_json(value["profile"], members[0].seed, value["configs"]),
                verdict=str(value["verdict"]),
                test_sharpe=float(value["test_sharpe"]),
                test_first=pd.Timestamp(value["test_slice"]["first"]),
                test_last=pd.Timestamp(value["test_slice"]["last"]),
                data=ArtifactRef(**value["data"]),
                members=members,
                replaces=value["replaces"],
            )
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"registry record {source} is malformed ({type(exc).__name__}: {exc}); {_RECORD_FIX}"
            ) from None


def _ref_of(stored: dict[str, str], store: ArtifactStore) -> ArtifactRef:
    """An artifact of a record in `store`: by key (schema 2), or an absolute URI of schema 1 rebased onto
    `store` (the store it was written to may have moved): the longest tail of its path that `store` holds."""
    if "key" in stored:
        return ArtifactRef(store.uri(stored["key"]), stored["sha256"])
    uri = stored["uri"]
    if uri.startswith(store.url.rstrip("/") + "/"):
        return ArtifactRef(uri, stored["sha256"])
    parts = uri.split("://", 1)[-1].split("/")
    key = next(("/".join(parts[i:]) for i in range(1, len(parts)) if store.exists("/".join(parts[i:]))), None)
    return ArtifactRef(uri if key is None else store.uri(key), stored["sha256"])  # not in it: loading says so


def profile_from_json(name: str, seed: int, configs: dict[str, dict[str, Any]]) -> Profile:
    """A Profile from stored stage configs (lists back to tuples; keys this code no longer has are dropped, a
    stage a record predates takes its defaults)."""
    stages = {}
    for stage, config_class in STAGE_CLASSES.items():
        known = {field.name for field in dataclasses.fields(config_class)}
        stages[stage] = config_class(
            **{
                key: tuple(value) if isinstance(value, list) else value
                for key, value in configs.get(stage, {}).items()
                if key in known
            }
        )
    return Profile(name=name, seed=seed, **stages)


# -- addressing --------------------------------------------------------------------------------------------


def version_key(dataset: str, version: int) -> str:
    return f"{PREFIX}/{dataset}/versions/{version:06d}.json"


def retirement_key(dataset: str, version: int) -> str:
    return f"{PREFIX}/{dataset}/retired/{version:06d}.json"


def champion_key(dataset: str) -> str:
    return f"{PREFIX}/{dataset}/champion.json"


def decision_key(dataset: str, at: pd.Timestamp, decision_id: str) -> str:
    """Named by time first, so a sorted listing is chronological; the id keeps names unique."""
    return f"{PREFIX}/{dataset}/decisions/{at:%Y%m%dT%H%M%S%fZ}-{decision_id}.json"


# -- reading -----------------------------------------------------------------------------------------------


def version_numbers(store: ArtifactStore, dataset: str) -> list[int]:
    """The promoted versions, oldest first (temporary files of a write in progress are not versions)."""
    names = (key.rsplit("/", 1)[-1] for key in store.list(f"{PREFIX}/{dataset}/versions"))
    return sorted(int(match[1]) for match in map(_VERSION_FILE.match, names) if match)


def read_record(store: ArtifactStore, key: str) -> Any:
    """A registry JSON record; one line naming it (CheckpointError) when it is not JSON."""
    try:
        return store.read_json(key)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"registry record {store.uri(key)} is not valid JSON ({exc}); {_RECORD_FIX}") from None


def read_version(store: ArtifactStore, dataset: str, version: int) -> ChampionRecord:
    key = version_key(dataset, version)
    return ChampionRecord.from_json(read_record(store, key), store.uri(key), store)


def newest_version(store: ArtifactStore, dataset: str) -> ChampionRecord | None:
    """The newest version, retired or not; None before the first promotion."""
    numbers = version_numbers(store, dataset)
    return read_version(store, dataset, numbers[-1]) if numbers else None


def read_retirement(store: ArtifactStore, dataset: str, version: int) -> dict[str, Any] | None:
    """Version `version`'s retirement (at, decision, reason), or None while it was never retired. A retirement
    file that cannot be read still retires the version (its existence is the fact), and says why it is unread."""
    key = retirement_key(dataset, version)
    if not store.exists(key):
        return None
    try:
        retirement = read_record(store, key)
        return {name: str(retirement[name]) for name in ("at", "decision", "reason")}
    except (CheckpointError, KeyError, TypeError) as exc:
        return {
            "at": "(unknown)",
            "decision": "(unknown)",
            "reason": f"its retirement record {store.uri(key)} is unreadable ({_one_line(exc)})",
        }


def current_champion(store: ArtifactStore, dataset: str) -> ChampionRecord | None:
    """The live champion: the newest version unless it was retired; None before the first promotion."""
    newest = newest_version(store, dataset)
    return None if newest is None or read_retirement(store, dataset, newest.version) else newest


def require_champion(store: ArtifactStore, dataset: str) -> ChampionRecord:
    newest = newest_version(store, dataset)
    if newest is None:
        raise ArtifactNotFoundError(
            f"no champion for data source {dataset!r} in {store.url} yet: run a segment on "
            "this data (cryptorl run --data ...); a healthy audited agent that clears the "
            "promotion floor promotes itself"
        )
    retired = read_retirement(store, dataset, newest.version)
    if retired:
        raise ArtifactNotFoundError(
            f"no live champion for data source {dataset!r} in {store.url}: {newest.identity} "
            f"was retired {retired['at']}: {retired['reason']}; run a segment on newer bars "
            "to promote one that clears the floor"
        )
    return newest


def history(store: ArtifactStore, dataset: str) -> tuple[list[ChampionRecord], list[str]]:
    """(every promotion whose record reads, oldest first; one line per record that does not)."""
    records, unreadable = [], []
    for number in version_numbers(store, dataset):
        try:
            records.append(read_version(store, dataset, number))
        except CheckpointError as exc:
            unreadable.append(str(exc))
    return records, unreadable


DECISION_FIELDS = ("at", "outcome", "reason")


def decisions(store: ArtifactStore, dataset: str, last: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(the logged decisions that read, oldest first, only the `last` ones when given; one line per decision file
    among those that does not read)."""
    keys = store.list(f"{PREFIX}/{dataset}/decisions")
    logged, unreadable = [], []
    for key in keys[-last:] if last else keys:
        try:
            decision = read_record(store, key)
            if not isinstance(decision, dict) or not all(name in decision for name in DECISION_FIELDS):
                raise CheckpointError(
                    f"registry record {store.uri(key)} is malformed (it lacks "
                    f"{', '.join(DECISION_FIELDS)}); {_RECORD_FIX}"
                )
            logged.append(decision)
        except CheckpointError as exc:
            unreadable.append(str(exc))
    return logged, unreadable


# -- writing -----------------------------------------------------------------------------------------------


def create_version(store: ArtifactStore, record: ChampionRecord) -> bool:
    """Create `record`'s version if nobody did; on success also point champion.json at the newest version.

    False means another promotion created that version first: re-read the champion and judge again.
    """
    payload = json.dumps(record.to_json(store), indent=2, sort_keys=True).encode()
    if not store.create_exclusive(version_key(record.dataset, record.version), payload):
        return False
    _sync_champion_pointer(store, record.dataset)
    return True


def retire(store: ArtifactStore, record: ChampionRecord, at: pd.Timestamp, decision_id: str, reason: str) -> bool:
    """Retire `record`'s version (it stays in the history); False when another decision retired it first."""
    payload = {"version": record.version, "at": at.isoformat(), "decision": decision_id, "reason": reason}
    if not store.create_exclusive(retirement_key(record.dataset, record.version), json.dumps(payload).encode()):
        return False
    _sync_champion_pointer(store, record.dataset)
    return True


def log_decision(
    store: ArtifactStore, dataset: str, at: pd.Timestamp, decision_id: str, decision: dict[str, Any]
) -> ArtifactRef:
    return store.write_json(decision_key(dataset, at, decision_id), decision)


def _sync_champion_pointer(store: ArtifactStore, dataset: str) -> None:
    """Write champion.json from the newest version (and its retirement) until it stays the newest after the write."""
    while True:
        newest = version_numbers(store, dataset)[-1]
        pointer = read_record(store, version_key(dataset, newest)) | {
            "retired": read_retirement(store, dataset, newest)
        }
        store.write_bytes(champion_key(dataset), json.dumps(pointer, indent=2, sort_keys=True).encode())
        if version_numbers(store, dataset)[-1] == newest:
            return


# -- reporting ---------------------------------------------------------------------------------------------


def champion_lines(store: ArtifactStore, dataset: str, now: pd.Timestamp, last_decisions: int = 10) -> list[str]:
    """What `cryptorl champion` prints: the live model, the promotion history, the recent decisions and any record
    that could not be read."""
    store.check_exists()
    versions, unreadable = history(store, dataset)
    retired = {r.version: read_retirement(store, dataset, r.version) for r in versions}
    logged, unread_decisions = decisions(store, dataset, last_decisions)
    lines = (
        [f"no champion for {dataset!r} in {store.url} yet"]
        if not versions
        else _record_lines(versions[-1], store.url, now, retired[versions[-1].version])
    )
    lines.append(f"history ({len(versions)} promotion{'s' * (len(versions) != 1)}):")
    lines += [
        f"  v{r.version}  {_when(r.promoted_at)}  segment {r.segment}  {_seeds_label(r.seeds)}  "
        f"{r.profile.name}  Sharpe {r.test_sharpe:.3f}  model {r.model_id}"
        + (f"  replaced v{r.replaces}" if r.replaces else "  (first)")
        + (f"  retired {_when_text(retirement['at'])}" if (retirement := retired[r.version]) else "")
        for r in versions
    ]
    lines.append(f"recent decisions ({len(logged)}):")
    lines += [f"  {_when_text(d['at'])}  {d['outcome']}  {d['reason']}" for d in logged]
    problems = [*unreadable, *unread_decisions]
    if problems:
        lines.append(f"unreadable records ({len(problems)}), left out above:")
        lines += [f"  {problem}" for problem in problems]
    return lines


def _record_lines(
    record: ChampionRecord, store_url: str, now: pd.Timestamp, retired: dict[str, Any] | None
) -> list[str]:
    header = (
        f"champion of {record.dataset!r} in {store_url}: {record.identity}"
        if retired is None
        else (
            f"no live champion of {record.dataset!r} in {store_url}: the last one, {record.identity}, was retired "
            f"{_when_text(retired['at'])} by decision {retired['decision']}: {retired['reason']}"
        )
    )
    return [
        header,
        f"  segment {record.segment} (test {_when(record.test_first)} .. {_when(record.test_last)}), "
        f"{_seeds_label(record.seeds)}, profile {record.profile.name}",
        f"  verdict {record.verdict}, net test Sharpe {record.test_sharpe:.3f} at w_cost 1 (real fee "
        f"{record.profile.env.fee:g})",
        f"  promoted {_when(record.promoted_at)} ({record.age_hours(now):,.1f} h ago) by decision "
        f"{record.decision}; data {record.data.uri} (sha256 {record.data.sha256[:12]} then)",
        *(
            f"  {name}{'' if len(record.members) == 1 else f' (seed {member.seed})'}: {ref.uri}"
            for member in record.members
            for name, ref in vars(member.refs).items()
        ),
    ]


def seeds_text(seeds: tuple[int, ...]) -> str:
    return ", ".join(map(str, seeds))


def _seeds_label(seeds: tuple[int, ...]) -> str:
    """'seed 0', or 'seed ensemble 0, 1'."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seed ensemble {seeds_text(seeds)}"


def _when_text(iso: str) -> str:
    """A stored time as `_when` writes it; text that is not a time (an unreadable record's) as it is."""
    try:
        return _when(pd.Timestamp(iso))
    except ValueError:
        return iso


def _when(ts: pd.Timestamp) -> str:
    return f"{ts.tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"
