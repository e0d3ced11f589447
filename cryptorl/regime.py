"""Market-regime context: a Gaussian HMM fit on train rows, read out by its FORWARD filter only.

The agent sees 5 context columns per bar: `p_state_0..p_state_3` = P(s_t | x_1..x_t), the filtered
state probabilities, and `regime_entropy`, their normalised entropy. States are numbered by ascending
volatility (mean of `rv_24`), so `p_state_0` is always the calmest regime, whichever seed fit it.

Why the forward filter and nothing else: hmmlearn's `predict_proba` / `score_samples` are the
forward-backward smoother P(s_t | x_1..x_T) and `predict` / `decode` are Viterbi over the whole
sequence; all of them let bar t see bars after t (hmmlearn issue 579). The filter here is our own
normalised forward recursion over per-bar emission log-likelihoods, so a value at bar t depends on
bars <= t only and is bit-identical on any prefix of the data.

Why entropy as the 5th column: the FiLM layer that consumes the context is linear in it, so a summary
that is linear in the probabilities (e.g. the expected volatility sum_k p_k * mu_k) adds nothing it
could not compute itself. Entropy is non-linear: it is high exactly when the filter is unsure, i.e.
around regime changes, which is the information a trader most needs and the probabilities hide.

Why exactly 4 states: the agent's observation has 5 context columns. Rather than silently pool or pad
states, `fit_regime_model` requires `regime.n_states == 4` and says so.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from threadpoolctl import threadpool_limits

from cryptorl.config import RegimeConfig
from cryptorl.errors import CheckpointError, DataError

N_STATES = 4
STATE_COLUMNS: tuple[str, ...] = tuple(f"p_state_{k}" for k in range(N_STATES))
CONTEXT_COLUMNS: tuple[str, ...] = (*STATE_COLUMNS, "regime_entropy")
VOL_COLUMN = "rv_24"  # states are ordered by their mean of this column when the HMM sees it
# Variance floor in standardised units (std >= 0.03 sigma): without it a state can collapse onto
# the exactly-zero returns of flat outage/maintenance bars and its likelihood explodes.
MIN_COVAR = 1e-3
MIN_ROWS_PER_STATE = 50  # each state needs enough bars to estimate its mean and covariance
_FORMAT = "cryptorl.regime/1"


@dataclass(frozen=True)
class InitReport:
    """How one EM restart went; `error` is set (and `log_likelihood` None) when it failed."""

    seed: int
    converged: bool  # stopped because the gain fell below tol, not because n_iter ran out
    n_iter: int
    log_likelihood: float | None
    error: str | None = None


class _FlooredGaussianHMM(GaussianHMM):
    """GaussianHMM whose M-step keeps every variance >= min_covar (hmmlearn only floors the init)."""

    _covars_: np.ndarray  # hmmlearn's storage behind `covars_`

    def _do_mstep(self, stats: dict) -> None:
        super()._do_mstep(stats)
        if self.covariance_type == "spherical":
            # hmmlearn 0.3 leaves a (K, F) tile of one variance per state; its covars_ property needs (K,).
            self._covars_ = np.maximum(self._covars_.mean(axis=1), self.min_covar)  # (K,)
        elif self.covariance_type == "diag":
            self._covars_ = np.maximum(self._covars_, self.min_covar)
        else:  # full / tied: lifting the diagonal keeps the matrix positive definite
            self._covars_ = self._covars_ + self.min_covar * np.eye(self.n_features)


@dataclass(frozen=True, eq=False)
class RegimeModel:
    """A fitted HMM (states ordered by volatility) plus what it was fit on and how the fit went."""

    hmm: GaussianHMM
    columns: tuple[str, ...]
    center: np.ndarray  # (F,) train mean of each column; the HMM sees (x - center) / scale
    scale: np.ndarray  # (F,) train standard deviation of each column
    log_likelihood: float  # of the training rows under the kept (best) restart
    n_train_rows: int
    inits: tuple[InitReport, ...]
    converged: bool  # did the kept restart converge within n_iter

    @property
    def n_states(self) -> int:
        return int(self.hmm.n_components)

    def context(self, features: pd.DataFrame) -> pd.DataFrame:
        """The 5 causal context columns on `features.index`.

        Rows before the first row with all HMM columns finite (feature warm-up) are NaN. A later row
        with a missing (non-finite) value carries the predicted prior P(s_t | x_1..x_{t-1}): no
        emission update, one transition step, so the context stays finite and still causal.
        """
        z = (_hmm_inputs(features, self.columns, where="regime context") - self.center) / self.scale  # (T, F)
        z[~np.isfinite(z).all(axis=1)] = np.nan  # +-inf is missing too, not an impossible observation
        log_emission = _emission_log_likelihood(z, self.hmm.means_, self.hmm.covars_)  # (T, K)
        probs = forward_filter(self.hmm.startprob_, self.hmm.transmat_, log_emission)  # (T, K)
        return pd.DataFrame(
            np.column_stack([probs, _normalised_entropy(probs)]),  # (T, 5)
            index=features.index,
            columns=list(CONTEXT_COLUMNS),
        )

    def to_bytes(self) -> bytes:
        """A pickle-free artifact (npz of the parameters + JSON metadata); `from_bytes` reloads it exactly."""
        meta = {
            "format": _FORMAT,
            "columns": list(self.columns),
            "covariance_type": self.hmm.covariance_type,
            "log_likelihood": self.log_likelihood,
            "n_train_rows": self.n_train_rows,
            "converged": self.converged,
            "inits": [asdict(report) for report in self.inits],
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            startprob=self.hmm.startprob_,
            transmat=self.hmm.transmat_,
            means=self.hmm.means_,
            covars=self.hmm._covars_,  # native shape (the covars_ property expands it to full)
            center=self.center,
            scale=self.scale,
            meta=np.array(json.dumps(meta)),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> RegimeModel:
        """Reload `to_bytes` output; `source` names the artifact in errors."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
            meta = json.loads(str(arrays.pop("meta")))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {_FORMAT!r}")
            hmm = _build_hmm(
                meta["covariance_type"], arrays["startprob"], arrays["transmat"], arrays["means"], arrays["covars"]
            )
            columns = tuple(meta["columns"])
            if hmm.means_.shape[1] != len(columns) or arrays["center"].shape != (len(columns),):
                raise ValueError(f"means of shape {hmm.means_.shape} do not match {len(columns)} columns")
            return cls(
                hmm=hmm,
                columns=columns,
                center=arrays["center"],
                scale=arrays["scale"],
                log_likelihood=float(meta["log_likelihood"]),
                n_train_rows=int(meta["n_train_rows"]),
                inits=tuple(InitReport(**report) for report in meta["inits"]),
                converged=bool(meta["converged"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, OSError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                f"cannot load regime model {source}: {exc}; re-run the fit_hmm stage to rebuild it"
            ) from None


def fit_regime_model(train_features: pd.DataFrame, seed: int = 0, *, config: RegimeConfig | None = None) -> RegimeModel:
    """Fit the regime HMM on the train rows of `config.columns` (non-finite warm-up rows dropped).

    Runs `config.n_inits` EM restarts with seeds derived from `seed` and keeps the best
    log-likelihood; a restart that fails numerically is reported and skipped.
    """
    config = config or RegimeConfig()
    config.validate()
    x = _hmm_inputs(train_features, config.columns, where="regime fit")  # (T, F)
    x = x[np.isfinite(x).all(axis=1)]  # (N, F): warm-up rows dropped
    min_rows = MIN_ROWS_PER_STATE * config.n_states
    if len(x) < min_rows:
        raise DataError(
            f"regime fit: only {len(x)} training rows have finite {', '.join(config.columns)}; "
            f"need at least {min_rows} ({MIN_ROWS_PER_STATE} per state): use a longer train slice"
        )
    center, scale = x.mean(axis=0), x.std(axis=0)  # (F,), (F,)
    for column, mu, sigma in zip(config.columns, center, scale, strict=True):
        if sigma <= 1e-9 * max(abs(mu), 1.0):
            raise DataError(
                f"regime fit: column {column!r} is constant ({mu:g}) on the {len(x)} training rows; "
                "remove it from regime.columns or check the feature"
            )
    z = (x - center) / scale  # (N, F)

    best: tuple[GaussianHMM, InitReport, float] | None = None
    reports: list[InitReport] = []
    for index, init_seed in enumerate(_init_seeds(seed, config.n_inits)):
        # One thread: k-means' OpenMP threads gain nothing on a few thousand rows, and when segments
        # fit in parallel processes their spin-waiting made a fit 5-10x slower on a 2-core machine.
        with threadpool_limits(limits=1):
            hmm, report = _fit_once(z, init_seed, index == 0, config)
        reports.append(report)
        if hmm is None or report.log_likelihood is None:  # this initialisation failed
            continue
        if best is None or report.log_likelihood > best[2]:
            best = (hmm, report, report.log_likelihood)
    if best is None:
        raise DataError(
            f"regime fit: all {config.n_inits} HMM initialisations failed on {len(z)} rows "
            f"(last error: {reports[-1].error}); check the features for extreme values, "
            "or lower regime.n_states / use regime.covariance_type=diag"
        )
    hmm, report, log_likelihood = best
    return RegimeModel(
        hmm=_order_by_volatility(hmm, config.columns),
        columns=tuple(config.columns),
        center=center,
        scale=scale,
        log_likelihood=log_likelihood,
        n_train_rows=len(z),
        inits=tuple(reports),
        converged=report.converged,
    )


def forward_filter(startprob: np.ndarray, transmat: np.ndarray, log_emission: np.ndarray) -> np.ndarray:
    """P(s_t | x_1..x_t) for every t, by the normalised (scaled) forward recursion.

    `log_emission` (T, K) holds log p(x_t | s_t = k); a row with a NaN is an unobserved bar: rows
    before the first observed one are NaN, later ones get the prediction step only. Row t reads
    rows <= t only, so the result on a prefix equals the prefix of the result bit for bit.
    """
    n_rows, n_states = log_emission.shape
    probs = np.full((n_rows, n_states), np.nan)  # (T, K)
    observed = ~np.isnan(log_emission).any(axis=1)  # (T,)
    if not observed.any():
        return probs
    # Each row's evidence relative to its most likely state, in (0, 1]: exp of a raw log-likelihood
    # of -800 would underflow, the ratio between states is all the update needs.
    evidence = np.exp(log_emission - log_emission.max(axis=1, keepdims=True))  # (T, K)
    first = int(np.argmax(observed))
    alpha = startprob  # (K,) prior of the first observed bar
    for t in range(first, n_rows):
        if t > first:  # predict: sum_j alpha_j * A[j, k]
            alpha = alpha @ transmat
        if observed[t]:  # update with the bar's own evidence
            alpha = _bayes_update(alpha, evidence[t], log_emission[t])
        probs[t] = alpha = alpha / alpha.sum()
    return probs


def _bayes_update(prior: np.ndarray, evidence: np.ndarray, log_emission: np.ndarray) -> np.ndarray:
    """prior * evidence, falling back to log space when every state the prior allows underflowed."""
    posterior = prior * evidence  # (K,)
    if posterior.sum() > 0:
        return posterior
    with np.errstate(divide="ignore"):  # log 0 = -inf for the states the prior rules out
        log_posterior = np.log(prior) + log_emission  # (K,)
    return np.exp(log_posterior - log_posterior.max())


def _fit_once(
    z: np.ndarray, init_seed: int, first: bool, config: RegimeConfig
) -> tuple[GaussianHMM | None, InitReport]:
    """One EM restart (the first from k-means means); numeric failures become a report, not an exception."""
    hmm = _FlooredGaussianHMM(
        n_components=config.n_states,
        covariance_type=config.covariance_type,
        min_covar=MIN_COVAR,
        n_iter=config.n_iter,
        tol=config.tol,
        random_state=init_seed,
    )
    if not first:
        # k-means (hmmlearn's init) lands on the same partition for every seed: it splits the wide
        # high-volatility cloud along the return columns. Later restarts start from distinct random
        # rows instead, so restarts explore different optima rather than repeat one.
        hmm.init_params = hmm.init_params.replace("m", "")
        hmm.means_ = z[np.random.default_rng(init_seed).choice(len(z), config.n_states, replace=False)]  # (K, F)
    try:
        with np.errstate(all="ignore"):  # non-finite results are caught below, not warned about
            hmm.fit(z)
            log_likelihood = float(hmm.score(z))  # a scalar over the train rows, never used as a feature
        params = (hmm.startprob_, hmm.transmat_, hmm.means_, hmm._covars_)
        if not np.isfinite(log_likelihood) or not all(np.isfinite(p).all() for p in params):
            raise FloatingPointError("EM produced non-finite parameters")
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__  # keep the one-line error rule
        return None, InitReport(
            seed=init_seed, converged=False, n_iter=hmm.monitor_.iter, log_likelihood=None, error=message
        )
    history = hmm.monitor_.history
    # hmmlearn's monitor_.converged is also True when n_iter simply ran out; we report the tol test only.
    converged = len(history) >= 2 and history[-1] - history[-2] < config.tol
    return hmm, InitReport(
        seed=init_seed, converged=bool(converged), n_iter=hmm.monitor_.iter, log_likelihood=log_likelihood
    )


def _init_seeds(seed: int, n_inits: int) -> list[int]:
    """Independent, reproducible restart seeds derived from the run seed."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(n_inits)]


def _order_by_volatility(hmm: GaussianHMM, columns: tuple[str, ...]) -> GaussianHMM:
    """Renumber states by ascending mean `rv_24` (else covariance trace) so labels survive refits."""
    if VOL_COLUMN in columns:
        key = hmm.means_[:, columns.index(VOL_COLUMN)]  # (K,)
    else:
        key = np.trace(hmm.covars_, axis1=1, axis2=2)  # (K,)
    order = np.argsort(key, kind="stable")  # (K,) new state k is old state order[k]
    covars = hmm._covars_ if hmm.covariance_type == "tied" else hmm._covars_[order]  # tied: shared by all
    return _build_hmm(
        hmm.covariance_type, hmm.startprob_[order], hmm.transmat_[np.ix_(order, order)], hmm.means_[order], covars
    )


def _build_hmm(
    covariance_type: str, startprob: np.ndarray, transmat: np.ndarray, means: np.ndarray, covars: np.ndarray
) -> GaussianHMM:
    """A GaussianHMM from its parameters (`covars` in hmmlearn's native shape for the type)."""
    n_states, n_features = means.shape
    hmm = _FlooredGaussianHMM(n_components=n_states, covariance_type=covariance_type, min_covar=MIN_COVAR)
    hmm.n_features = n_features
    hmm.startprob_, hmm.transmat_, hmm.means_ = startprob, transmat, means
    hmm.covars_ = covars  # the setter validates shape and positivity
    return hmm


def _hmm_inputs(features: pd.DataFrame, columns: tuple[str, ...], where: str) -> np.ndarray:
    missing = [column for column in columns if column not in features.columns]
    if missing:
        raise DataError(
            f"{where}: features lack column(s) {', '.join(missing)}; pass the technical features "
            "frame (extra columns are ignored) or change regime.columns"
        )
    return features.loc[:, list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)  # (T, F)


def _emission_log_likelihood(z: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """log N(z_t | mu_k, Sigma_k) as a (T, K) array; a row with a NaN gives NaN.

    Elementwise numpy only (no BLAS matmul, whose blocking depends on T), so each row's value does not
    depend on how many rows are passed: that is what makes the context exactly truncation invariant.
    """
    chol = np.linalg.cholesky(covars)  # (K, F, F)
    chol_inv = np.linalg.inv(chol)  # (K, F, F)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # (K,)
    diff = z[:, None, :] - means[None, :, :]  # (T, K, F)
    white = (chol_inv[None, :, :, :] * diff[:, :, None, :]).sum(axis=-1)  # (T, K, F)
    return -0.5 * (means.shape[1] * np.log(2.0 * np.pi) + log_det + (white**2).sum(axis=-1))  # (T, K)


def _normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """-sum p log p / log K per row, in [0, 1]; NaN rows stay NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)  # (T, K), 0 log 0 = 0
    entropy = (0.0 - terms.sum(axis=1)) / np.log(probs.shape[1])  # (T,); 0.0 - avoids -0.0
    return np.where(np.isnan(probs).any(axis=1), np.nan, entropy)
