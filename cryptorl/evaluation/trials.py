"""Trials: every audited (configuration, seed) run on a data source, kept in the store for the deflated Sharpe.

Each audit of the trained agent records one trial under `trials/<dataset>/<key>.json` (dataset: the data
source's stable name, `cryptorl.data.dataset_name`; key: the audit's fingerprint, so an audit served from
the cache or recomputed into the same content never adds a second record, and an existing record is kept).
A record holds the dataset name and data sha256, the configuration fingerprint (every stage config and the
stage code version, not the seed), the seed, segment and profile, the moments of the trained agent's net
per-bar returns at the headline w_cost (enough to pool segments and to get skew and kurtosis) with their
Sharpe ratio, the audit report's URI and the UTC time it was recorded.

For the DSR a trial is one (configuration, seed): its segments' moments are pooled into one per-bar Sharpe
ratio (the latest record per segment counts, e.g. after the data grew). Trials that ran on other segments
than the series being judged still count: they were tried on this data source, and their extra dispersion
only raises the bar (SR0).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cryptorl.data import dataset_name
from cryptorl.hashing import sha256_bytes
from cryptorl.storage import ArtifactRef, ArtifactStore

TRIALS_PREFIX = "trials"


@dataclass(frozen=True)
class Provenance:
    """What an audited run's trial is filed under: the data source and the configuration, not the seed."""

    data: ArtifactRef  # the data source as given (uri) and the sha256 of its bytes
    configuration: str  # fingerprint of every stage config + the stage code version
    profile: str

    @property
    def dataset(self) -> str:
        return dataset_name(self.data.uri)


@dataclass(frozen=True)
class Moments:
    """Count, mean and central moment sums Σ(x − mean)^k (k = 2, 3, 4) of a series; mergeable (Pébay 2008)."""

    n: int
    mean: float
    m2: float
    m3: float
    m4: float

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        values = np.asarray(values, dtype=np.float64)
        mean = float(np.mean(values)) if len(values) else 0.0
        centred = values - mean
        return cls(len(values), mean, *(float(np.sum(centred**k)) for k in (2, 3, 4)))

    def merge(self, other: Moments) -> Moments:
        """The moments of both series concatenated (exact pairwise update, Pébay 2008 eqs. 2.1-2.3)."""
        n_a, n_b = self.n, other.n
        n = n_a + n_b
        if n_a == 0 or n_b == 0:
            return other if n_a == 0 else self
        delta = other.mean - self.mean
        m2 = self.m2 + other.m2 + delta**2 * n_a * n_b / n
        m3 = (
            self.m3
            + other.m3
            + delta**3 * n_a * n_b * (n_a - n_b) / n**2
            + 3 * delta * (n_a * other.m2 - n_b * self.m2) / n
        )
        m4 = (
            self.m4
            + other.m4
            + delta**4 * n_a * n_b * (n_a**2 - n_a * n_b + n_b**2) / n**3
            + 6 * delta**2 * (n_a**2 * other.m2 + n_b**2 * self.m2) / n**2
            + 4 * delta * (n_a * other.m3 - n_b * self.m3) / n
        )
        return Moments(n, self.mean + delta * n_b / n, m2, m3, m4)

    @property
    def sharpe(self) -> float:
        """Per-bar mean / std (ddof=1); 0.0 without dispersion or with fewer than 2 bars (as metrics.py)."""
        return self.mean / math.sqrt(self.m2 / (self.n - 1)) if self.n >= 2 and self.m2 > 0 else 0.0

    @property
    def skew(self) -> float:
        return math.sqrt(self.n) * self.m3 / self.m2**1.5 if self.m2 > 0 else 0.0

    @property
    def kurtosis(self) -> float:
        """Non-excess kurtosis (3 for a normal series)."""
        return self.n * self.m4 / self.m2**2 if self.m2 > 0 else 0.0


@dataclass(frozen=True)
class Trial:
    """One audited run of the trained agent on one segment (what `trials/<dataset>/<key>.json` holds)."""

    key: str
    dataset: str
    data_uri: str
    data_sha256: str
    configuration: str
    profile: str
    seed: int
    segment: int
    w_cost: float
    fee: float
    moments: Moments  # of the net per-bar log-returns at `w_cost`
    sharpe: float  # per bar
    bars_per_year: float
    report: str  # the audit report's URI
    recorded_at: str  # UTC, ISO 8601

    @classmethod
    def of(
        cls,
        key: str,
        provenance: Provenance,
        seed: int,
        segment: int,
        net: np.ndarray,
        w_cost: float,
        fee: float,
        bars_per_year: float,
        report: str,
    ) -> Trial:
        moments = Moments.of(net)
        return cls(
            key,
            provenance.dataset,
            provenance.data.uri,
            provenance.data.sha256,
            provenance.configuration,
            provenance.profile,
            seed,
            segment,
            w_cost,
            fee,
            moments,
            moments.sharpe,
            bars_per_year,
            report,
            datetime.now(UTC).isoformat(),
        )

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Trial:
        return cls(**{**value, "moments": Moments(**value["moments"])})

    @property
    def sharpe_annualized(self) -> float:
        return self.sharpe * math.sqrt(self.bars_per_year)


def trial_key(dataset: str, key: str) -> str:
    return f"{TRIALS_PREFIX}/{dataset}/{key}.json"


def record_trial(store: ArtifactStore, trial: Trial) -> ArtifactRef:
    """Write `trial` unless a record with its key exists (then that one is kept and returned)."""
    key = trial_key(trial.dataset, trial.key)
    if store.exists(key):
        return ArtifactRef(store.uri(key), sha256_bytes(store.read_bytes(key)))
    return store.write_json(key, dataclasses.asdict(trial) | {"sharpe_annualized": trial.sharpe_annualized})


def load_trials(folder: ArtifactStore) -> list[Trial]:
    """Every trial in `folder` (a store rooted at `trials/<dataset>`), oldest first."""
    trials = []
    for key in folder.list():
        if key.endswith(".json"):
            value = folder.read_json(key)
            value.pop("sharpe_annualized", None)  # derived, written for readers of the JSON
            trials.append(Trial.from_json(value))
    return sorted(trials, key=lambda trial: trial.recorded_at)


def trial_sharpes(trials: list[Trial]) -> dict[tuple[str, int], float]:
    """Per-bar Sharpe ratio per (configuration, seed), its segments' moments pooled (latest record per segment)."""
    latest: dict[tuple[str, int], dict[int, Trial]] = {}
    for trial in sorted(trials, key=lambda t: t.recorded_at):
        latest.setdefault((trial.configuration, trial.seed), {})[trial.segment] = trial
    pooled = {}
    for group, by_segment in latest.items():
        moments = Moments(0, 0.0, 0.0, 0.0, 0.0)
        for segment in sorted(by_segment):
            moments = moments.merge(by_segment[segment].moments)
        pooled[group] = moments.sharpe
    return pooled


def trial_statistics(trials: list[Trial]) -> tuple[int, float]:
    """(N, V): the number of (configuration, seed) trials and the variance (ddof=1) of their per-bar Sharpe."""
    sharpes = list(trial_sharpes(trials).values())
    return len(sharpes), float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
