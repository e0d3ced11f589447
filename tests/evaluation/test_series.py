"""The per-bar series the audit stores: one row per decision bar, position and net per policy."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from cryptorl.audit import backtest_many, make_policy
from cryptorl.config import EnvConfig
from cryptorl.envs import MarketData
from cryptorl.errors import DataError
from cryptorl.evaluation.series import audit_series, policies_of

SPAN = MarketData.random(400, seed=0)
ENV = EnvConfig(episode_length=32, fee=0.001)


def test_series_holds_every_policy_at_the_headline_w_cost_on_utc_timestamps():
    labels = pd.date_range("2018-08-01", periods=SPAN.n_bars, freq="h", tz="UTC").to_numpy()
    market = dataclasses.replace(SPAN, row_labels=labels).with_slice(300, 400)
    policies = {name: make_policy(name, market=market) for name in ("buy_and_hold", "momentum")}
    results = backtest_many(policies, market, ENV, (0.0, 1.0), include_market=True)
    frame = audit_series(results, 1.0)
    assert len(frame) == 99 and str(frame.index.tz) == "UTC" and frame.index[0] == pd.Timestamp(labels[300])
    assert policies_of(frame) == ["buy_and_hold", "momentum"]
    np.testing.assert_array_equal(frame["position.momentum"], results["momentum"].runs[1.0].positions)
    np.testing.assert_array_equal(frame["net.momentum"], results["momentum"].runs[1.0].net_returns)
    np.testing.assert_array_equal(frame["log_return"], results["momentum"].log_returns)


def test_a_market_without_timestamps_is_refused():
    market = SPAN.with_slice(300, 400)
    results = backtest_many({"flat": make_policy("flat", market=market)}, market, ENV, (1.0,), include_market=True)
    with pytest.raises(DataError, match="the audited market has no timestamps"):
        audit_series(results, 1.0)
