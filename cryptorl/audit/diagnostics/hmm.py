"""What regimes did the HMM see on the test slice, and do they mean anything for returns?

A regime model worth conditioning on has states that persist (runs of many bars, not a flicker) and
that differ in what follows them. Returns are attributed to the dominant (argmax) filtered state at bar
t and are the NEXT bar's log-return, log(close[t+1] / close[t]): what a position taken at t earns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptorl.errors import DataError
from cryptorl.regime import CONTEXT_COLUMNS, STATE_COLUMNS


@dataclass(frozen=True)
class HMMDiagnostics:
    """Occupancy, persistence and next-bar returns per state; per-state lists are indexed 0..3 (calm -> volatile)."""

    n_bars: int  # bars with a finite context and return (the warm-up rows are left out)
    occupancy_prob: list[float]  # mean filtered probability per state
    occupancy_argmax: list[float]  # share of bars where the state is the argmax
    mean_run_length: float  # mean length in bars of a run of the same argmax state
    run_length_by_state: list[float]  # per state (0.0 where it never is the argmax)
    n_switches: int  # argmax changes
    return_mean_by_state: list[float]  # mean next-bar log-return per argmax state (0.0 where absent)
    return_vol_by_state: list[float]  # std of the same returns (0.0 where absent)
    entropy_mean: float  # mean normalised regime entropy: near 1 means the filter rarely knows the regime


def hmm_diagnostics(context: pd.DataFrame, log_returns: np.ndarray) -> HMMDiagnostics:
    """Diagnostics of the test slice's context (T, 5 CONTEXT_COLUMNS) and next-bar log-returns (T,)."""
    missing = [column for column in CONTEXT_COLUMNS if column not in context.columns]
    if missing:
        raise DataError(
            f"hmm_diagnostics: context lacks columns {missing}: pass RegimeModel.context(...) output "
            f"with {', '.join(CONTEXT_COLUMNS)}"
        )
    returns = np.asarray(log_returns, dtype=np.float64)  # (T,)
    if returns.shape != (len(context),):
        raise DataError(
            f"hmm_diagnostics: log_returns has shape {returns.shape} but context has {len(context)} rows: "
            "pass the next-bar log-returns of the same bars"
        )
    values = context[list(CONTEXT_COLUMNS)].to_numpy(np.float64)  # (T, 5)
    finite = np.isfinite(values).all(axis=1) & np.isfinite(returns)
    if not finite.any():
        raise DataError("hmm_diagnostics: no bar has a finite context and return: pass a slice past the warm-up")
    probs, entropy, returns = values[finite, : len(STATE_COLUMNS)], values[finite, -1], returns[finite]
    states = probs.argmax(axis=1)  # (T',)
    run_states, run_lengths = run_lengths_of(states)
    k = range(len(STATE_COLUMNS))
    return HMMDiagnostics(
        n_bars=len(states),
        occupancy_prob=probs.mean(axis=0).tolist(),
        occupancy_argmax=[float((states == s).mean()) for s in k],
        mean_run_length=float(run_lengths.mean()),
        run_length_by_state=[_mean(run_lengths[run_states == s]) for s in k],
        n_switches=len(run_lengths) - 1,
        return_mean_by_state=[_mean(returns[states == s]) for s in k],
        return_vol_by_state=[float(returns[states == s].std()) if (states == s).any() else 0.0 for s in k],
        entropy_mean=float(entropy.mean()),
    )


def run_lengths_of(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The state (R,) and length (R,) of each run of equal consecutive values of `states` (T,), T >= 1."""
    starts = np.flatnonzero(np.diff(states) != 0) + 1  # first index of every run but the first
    bounds = np.concatenate([[0], starts, [len(states)]])  # (R + 1,)
    return states[bounds[:-1]], np.diff(bounds)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0
