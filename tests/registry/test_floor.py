"""The promotion floor: a model that loses to doing nothing, or to buy & hold, is never the live model.

The agents are the session's tiny real models with their actor pinned to a constant position (`pinned`), so
their net Sharpe follows the market by construction: BTC fell over segment 0's test slice (buy & hold
-12.4) and rose over segment 1's (+3.8), so a short agent clears the floor on the first and not the second.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from cryptorl.champion import registry
from cli.main import main
from cryptorl.config import with_overrides
from cryptorl.errors import ArtifactNotFoundError, ConfigError
from cryptorl.champion.live import compute_signal, floor_sharpes
from cryptorl.champion.promotion import clears, promote
from cryptorl.champion.promotion_markdown import promotion_markdown
from cryptorl.storage import ArtifactStore
from tests.registry.conftest import pinned

DATASET = "btcusdt-1h"
NOW = pd.Timestamp("2026-01-05 02:00", tz="UTC")
SEGMENT_TESTS = {0: ("2018-08-06 08:00", "2018-08-11 07:00"), 1: ("2018-08-11 08:00", "2018-08-16 07:00")}
SHORT = -0.9


def with_floor(challenger, floor: str = "flat,buy_and_hold"):
    return dataclasses.replace(challenger, profile=with_overrides(challenger.profile, {"promotion.floor": floor}))


def slice_floor(trained, segment: int) -> dict[str, float]:
    first, last = (pd.Timestamp(bar, tz="UTC") for bar in SEGMENT_TESTS[segment])
    return floor_sharpes(trained.ohlcv, first, last, trained.profile.env.fee, ("flat", "buy_and_hold"))


@pytest.fixture
def store_url(tmp_path) -> str:
    return f"file://{tmp_path}"


def test_the_floor_is_a_config_value_checked_up_front(trained):
    assert with_overrides(trained.profile, {"promotion.floor": "buy_and_hold"}).promotion.floor == ("buy_and_hold",)
    with pytest.raises(ConfigError, match=r"invalid config promotion.floor=\('momentum',\): name baselines among "
                                          r"flat, buy_and_hold"):
        with_overrides(trained.profile, {"promotion.floor": "momentum"})
    assert clears(0.1, {"flat": 0.0, "buy_and_hold": -1.0}) and not clears(0.0, {"flat": 0.0})
    assert clears(-5.0, {})  # no floor


def test_a_healthy_agent_below_the_floor_is_refused_with_its_numbers(trained, store_url):
    store = ArtifactStore(store_url)
    short = with_floor(pinned(trained.challengers(store_url)[1, 0], SHORT, store_url))
    decision = promote(store, [short], now=NOW)
    [candidate] = decision.candidates
    floor = slice_floor(trained, 1)
    assert floor["buy_and_hold"] > 3 and candidate.verdict == "healthy" and candidate.sharpe < -3
    assert candidate.floor == floor
    assert not decision.accepted and decision.version is None and decision.retired is None
    assert decision.reason == (f"no candidate can be promoted (segment 1 seed 0: its net test Sharpe "
                               f"{candidate.sharpe:.3f} does not clear the floor (flat 0.000, buy_and_hold "
                               f"{floor['buy_and_hold']:.3f})); there is still no live champion")
    assert registry.version_numbers(store, DATASET) == []
    [logged] = registry.decisions(store, DATASET)[0]
    assert logged["outcome"] == "rejected" and logged["candidates"][0]["floor"] == floor


def test_a_champion_below_the_floor_on_newer_bars_is_retired_and_signal_says_why(trained, store_url, capsys):
    store, challengers = ArtifactStore(store_url), trained.challengers(store_url)
    first = promote(store, [with_floor(pinned(challengers[0, 0], SHORT, store_url))], now=NOW)
    assert first.accepted and first.version == 1 and first.challenger.sharpe > 10  # short in a falling market
    buy_and_hold = slice_floor(trained, 0)["buy_and_hold"]
    assert first.reason.endswith(f"clears the floor (flat 0.000, buy_and_hold {buy_and_hold:.3f})")

    later = NOW + pd.Timedelta(days=5)
    decision = promote(store, [with_floor(pinned(challengers[1, 0], SHORT, store_url))], now=later)
    floor = slice_floor(trained, 1)
    assert decision.outcome == "retired" and decision.retired == 1 and decision.version is None
    assert decision.champion.sharpe < 0 and decision.champion.floor == floor and decision.champion.below_floor
    retirement = (f"champion v1 is retired: its net Sharpe {decision.champion.sharpe:.3f} on the newest test slice "
                  f"2018-08-11 08:00 UTC .. 2018-08-16 07:00 UTC does not clear the floor (flat 0.000, buy_and_hold "
                  f"{floor['buy_and_hold']:.3f})")
    assert decision.reason.endswith(f"; {retirement}") and "does not clear the floor" in decision.candidates[0].excluded
    assert promotion_markdown(decision).startswith("# Promotion RETIRED: btcusdt-1h, no live champion\n")
    assert registry.current_champion(store, DATASET) is None and registry.version_numbers(store, DATASET) == [1]
    assert store.read_json(registry.champion_key(DATASET))["retired"]["reason"] == retirement
    assert [d["outcome"] for d in registry.decisions(store, DATASET)[0]] == ["accepted", "retired"]

    with pytest.raises(ArtifactNotFoundError, match=r"no live champion for data source 'btcusdt-1h' in \S+: "
                                                    r"btcusdt-1h v1 \(model \w+\) was retired 2026-01-10T02:00:00"
                                                    r"\+00:00: champion v1 is retired: its net Sharpe -"):
        compute_signal(store, challengers[1, 0].data.uri)
    code = main(["signal", "--data", challengers[1, 0].data.uri, "--storage", store_url, "--max-staleness", "inf"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "was retired" in err and "Traceback" not in err
    code = main(["champion", "--data", challengers[1, 0].data.uri, "--storage", store_url])
    out, _ = capsys.readouterr()
    assert code == 0 and out.startswith(f"no live champion of 'btcusdt-1h' in {store_url}: the last one, "
                                        "btcusdt-1h v1 (model ")
    assert "  (first)  retired 2026-01-10 02:00 UTC\n" in out and "  retired  no candidate can be promoted" in out

    again = promote(store, [with_floor(pinned(challengers[1, 0], SHORT, store_url))], now=later)
    assert again.outcome == "rejected" and again.champion is None  # nothing live left to retire
