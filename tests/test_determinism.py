"""Determinism across processes: one seed, two fresh Python processes, the same audit report numbers.

Each child runs the real library stages (split → fit_hmm → pretrain_mae → train_tqc → audit_segment) on
segment 0 of the bundled bars up to 2018-10, with a tiny training, and prints the audit report's numbers.
Nothing is shared between the children: each has its own store and work directory, so an in-process cache,
a global RNG left over from an earlier test or a torch thread count cannot make them agree by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


# The child: run one segment per given seed, in order, and print each report's numbers as one JSON line.
CHILD = r"""
import json, sys
from cryptorl import stages
from cryptorl.config import get_profile, with_overrides
from cryptorl.storage import ArtifactStore

data_path, store_url, seeds = sys.argv[1], sys.argv[2], [int(seed) for seed in sys.argv[3:]]
profile = with_overrides(get_profile("smoke"), {
    "mae.max_epochs": "1", "mae.steps_per_epoch": "5", "regime.n_inits": "1",
    "train.total_timesteps": "256", "train.learning_starts": "64",  # a few dozen gradient updates
    "env.no_trade_band": "0"})  # so few updates leave the targets inside the band around flat: positions all 0
store = ArtifactStore(store_url)
for seed in seeds:
    split = stages.split_segment(store, stages.source_ref(data_path), 0, profile.data, profile.features, profile.wfo)
    regime = stages.fit_hmm(store, split, profile.regime, seed)
    mae = stages.pretrain_mae(store, split, profile.mae, seed)
    tqc = stages.train_tqc(store, split, regime, mae, profile.mae, profile.train, profile.env, seed, progress=False)
    audit = stages.audit_segment(store, split, regime, mae, tqc, profile.mae, profile.train, profile.env, seed)
    report = store.read_json(audit.report)
    print(json.dumps({key: report[key] for key in ("seed", "verdict", "checks", "metrics", "reward", "diagnostics")}))
"""


def start_child(data_path: str, tmp: Path, name: str, seeds: list[int]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CRYPTORL_WORK_DIR": str(tmp / name / "work"),
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, "-c", CHILD, data_path, f"file://{tmp / name / 'store'}",
                             *map(str, seeds)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def reports_by_seed(child: subprocess.Popen) -> list[dict]:
    stdout, stderr = child.communicate(timeout=200)  # under pytest-timeout's 300 s per test
    assert child.returncode == 0, stderr[-3000:]
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def reports(data_2018, tmp_path_factory) -> dict[str, dict]:
    """Two children side by side (the CI box has 2 cores): seed 0 alone, and seed 1 then seed 0.

    The second child runs seed 0 after another seed, so nothing a run leaves behind in its process (global
    RNGs, caches) may change what the next run computes.
    """
    tmp = tmp_path_factory.mktemp("determinism")
    alone, after_other = start_child(data_2018, tmp, "alone", [0]), start_child(data_2018, tmp, "after", [1, 0])
    (first,), (other_seed, again) = reports_by_seed(alone), reports_by_seed(after_other)
    return {"first": first, "other_seed": other_seed, "again": again}


def trained_rows(report: dict) -> list[dict]:
    return [row for row in report["metrics"] if row["policy"] == "trained"]


def test_the_same_seed_in_two_processes_gives_the_same_report_numbers(reports):
    assert trained_rows(reports["first"])  # the report has the trained agent's numbers
    assert reports["again"] == reports["first"]


def test_another_seed_gives_other_numbers(reports):
    assert trained_rows(reports["other_seed"]) != trained_rows(reports["first"])
    assert reports["other_seed"]["diagnostics"] != reports["first"]["diagnostics"]
