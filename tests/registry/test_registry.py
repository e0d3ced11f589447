"""cryptorl/champion/registry.py: records that round-trip, append-only versions, the champion pointer, the decision log."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from cryptorl.champion import registry
from cryptorl.errors import ArtifactNotFoundError, CheckpointError
from cryptorl.champion.registry import ChampionRecord, Member
from cryptorl.storage import ArtifactStore

PROMOTED_AT = pd.Timestamp("2026-01-05 02:00", tz="UTC")


@pytest.fixture
def store_and_challenger(trained, tmp_path):
    url = f"file://{tmp_path}"
    return ArtifactStore(url), trained.challengers(url)[1, 0]


def record_of(challenger, version: int, sharpe: float = 0.5) -> ChampionRecord:
    return ChampionRecord(version=version, dataset="btcusdt-1h", promoted_at=PROMOTED_AT + pd.Timedelta(hours=version),
                          decision=f"decision{version}", segment=1,
                          profile=dataclasses.replace(challenger.profile, seed=challenger.seed), verdict="healthy",
                          test_sharpe=sharpe, test_first=pd.Timestamp("2018-08-11 08:00", tz="UTC"),
                          test_last=pd.Timestamp("2018-08-16 07:00", tz="UTC"), data=challenger.data,
                          members=(Member(challenger.seed, challenger.refs),), replaces=version - 1 or None)


def test_a_record_holds_every_ref_with_its_hash_and_the_full_configs(store_and_challenger):
    store, challenger = store_and_challenger
    record = record_of(challenger, 1)
    stored = json.loads(json.dumps(record.to_json(store)))  # as it lies in the store
    [member] = stored["members"]
    assert member["seed"] == challenger.seed and set(member["refs"]) == {
        "split_features", "split_meta", "hmm_model", "hmm_context", "mae_checkpoint", "tqc_model", "audit_report"}
    # Keys within the store, not URIs: a copied, restored or re-prefixed store reads the same record.
    assert member["refs"]["tqc_model"] == {"key": store.key_of(challenger.tqc.model),
                                           "sha256": challenger.tqc.model.sha256}
    assert member["refs"]["tqc_model"]["key"].startswith("segments/1/tqc/")
    assert stored["configs"]["train"]["net_arch"] == [64, 64] and stored["configs"]["mae"]["d_model"] == 32
    assert stored["promoted_at"] == "2026-01-05T03:00:00+00:00" and stored["data"]["sha256"] == challenger.data.sha256
    assert ChampionRecord.from_json(stored, "v1", store) == record
    assert record.identity == f"btcusdt-1h v1 (model {challenger.tqc.model.sha256[:12]})"


def test_a_stored_config_key_this_code_no_longer_knows_is_dropped_a_broken_record_is_one_line(store_and_challenger):
    store, challenger = store_and_challenger
    stored = record_of(challenger, 1).to_json(store)
    stored["configs"]["train"]["retired_option"] = 3
    assert ChampionRecord.from_json(stored, "v1", store).profile.train == challenger.profile.train
    del stored["members"]
    with pytest.raises(CheckpointError, match=r"^registry record v1 is malformed \(KeyError: 'members'\)"):
        ChampionRecord.from_json(stored, "v1", store)


def test_a_record_of_the_first_schema_reads_as_one_member(store_and_challenger):
    store, challenger = store_and_challenger
    record = record_of(challenger, 1)
    stored = record.to_json(store)
    [member] = stored.pop("members")
    moved = {name: {"uri": f"file:///an/old/place/{ref['key']}", "sha256": ref["sha256"]}
             for name, ref in member["refs"].items()}  # absolute URIs into a store that has moved since
    first_schema = stored | {"schema": "cryptorl.champion/1", "seed": member["seed"], "refs": moved}
    assert ChampionRecord.from_json(first_schema, "v1", store) == record


def test_an_ensemble_record_names_its_members(store_and_challenger, trained):
    store, challenger = store_and_challenger
    other = trained.challengers(store.url)[1, 1]
    ensemble = dataclasses.replace(record_of(challenger, 1), members=(Member(0, challenger.refs), Member(1, other.refs)))
    assert ensemble.seeds == (0, 1) and ensemble.model_id not in (challenger.refs.model_id, other.refs.model_id)
    assert ensemble.identity == f"btcusdt-1h v1 (ensemble {ensemble.model_id} of seeds 0, 1)"
    assert ChampionRecord.from_json(json.loads(json.dumps(ensemble.to_json(store))), "v1", store) == ensemble


def test_a_version_is_created_once_and_the_champion_is_the_newest(store_and_challenger):
    store, challenger = store_and_challenger
    with pytest.raises(ArtifactNotFoundError, match=r"no champion for data source 'btcusdt-1h' in file://\S+ yet"):
        registry.require_champion(store, "btcusdt-1h")
    assert registry.create_version(store, record_of(challenger, 1))
    assert not registry.create_version(store, record_of(challenger, 1, sharpe=9.0))  # the version is taken
    assert registry.current_champion(store, "btcusdt-1h").test_sharpe == 0.5
    store.write_bytes("registry/btcusdt-1h/versions/.000002.json.x1.tmp", b"{")  # a write in progress
    assert registry.version_numbers(store, "btcusdt-1h") == [1]
    assert registry.create_version(store, record_of(challenger, 2, sharpe=0.7))
    assert [r.version for r in registry.history(store, "btcusdt-1h")[0]] == [1, 2]
    assert registry.require_champion(store, "btcusdt-1h").version == 2
    # The pointer is the newest version's record, and its retirement (none here).
    assert store.read_json(registry.champion_key("btcusdt-1h")) == store.read_json(
        registry.version_key("btcusdt-1h", 2)) | {"retired": None}


def test_decisions_are_logged_in_time_order(store_and_challenger):
    store, _ = store_and_challenger
    for hour, outcome in ((3, "rejected"), (1, "accepted"), (2, "rejected")):
        at = PROMOTED_AT + pd.Timedelta(hours=hour)
        registry.log_decision(store, "btcusdt-1h", at, f"id{hour}", {"at": at.isoformat(), "outcome": outcome,
                                                                    "reason": "r"})
    assert [d["outcome"] for d in registry.decisions(store, "btcusdt-1h")[0]] == ["accepted", "rejected", "rejected"]
    assert [d["at"][11:13] for d in registry.decisions(store, "btcusdt-1h", last=2)[0]] == ["04", "05"]
