"""`cryptorl champion` and `cryptorl signal`: what they print, and every bad input as one line with exit 2."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest

from cryptorl.champion import registry
from cli.main import main
from cryptorl.config import SignalConfig
from cryptorl.errors import ArtifactNotFoundError, CryptoRLError, DataError, ModelDimensionsError
from cryptorl.champion.live import compute_signal
from cryptorl.champion.promotion import promote
from cryptorl.storage import ArtifactStore

DATASET = "btcusdt-1h"
LAST_BAR = pd.Timestamp("2018-08-18 23:00", tz="UTC")  # the newest bar of the test data
HISTORICAL = ["--max-staleness", "inf"]


@dataclass(frozen=True)
class Live:
    store_url: str  # holds champion v1: segment 1 seed 0
    data: str


@pytest.fixture(scope="module")
def live(trained, tmp_path_factory) -> Live:
    url = f"file://{tmp_path_factory.mktemp('live-store')}"
    challenger = trained.challengers(url)[1, 0]
    promote(ArtifactStore(url), [challenger])
    return Live(url, challenger.data.uri)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_champion_shows_the_live_model_its_history_and_the_decisions(live, capsys):
    code, out, _ = run_cli(capsys, "champion", "--data", live.data, "--storage", live.store_url)
    champion = registry.require_champion(ArtifactStore(live.store_url), DATASET)
    assert code == 0
    assert out.startswith(f"champion of 'btcusdt-1h' in {live.store_url}: btcusdt-1h v1 (model "
                          f"{champion.model_id})\n  segment 1 (test 2018-08-11 08:00 UTC .. 2018-08-16 07:00 "
                          "UTC), seed 0, profile smoke\n")
    assert f"net test Sharpe {champion.test_sharpe:.3f} at w_cost 1 (real fee 0.001)" in out
    assert f"  tqc_model: {champion.members[0].refs.tqc_model.uri}\n" in out and "history (1 promotion):\n  v1  " in out
    assert "recent decisions (1):\n" in out and "  accepted  first live champion: segment 1 seed 0 is healthy" in out


def test_champion_before_any_promotion_says_so(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "champion", "--storage", f"file://{tmp_path}")
    assert code == 0 and out.startswith(f"no champion for 'btcusdt-1h' in file://{tmp_path} yet\nhistory (0 ")


def test_signal_prints_the_bar_the_position_the_regime_and_the_champion(live, capsys):
    code, out, _ = run_cli(capsys, "signal", "--data", live.data, "--storage", live.store_url, *HISTORICAL)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].startswith("bar 2018-08-18 23:00 UTC (the newest complete bar, closed ")
    assert lines[1].startswith("target position ") and "at w_cost 1 (held " in lines[1]
    assert "on the champion's own path since 2018-08-11 08:00 UTC)" in lines[1]
    assert lines[2].startswith("regime p_state_0 ") and "regime_entropy" in lines[2]
    assert lines[3].startswith("champion btcusdt-1h v1 (model ") and "segment 1, seed 0, profile smoke" in lines[3]

    code, out, _ = run_cli(capsys, "signal", "--data", live.data, "--storage", live.store_url, *HISTORICAL, "--json")
    signal = json.loads(out)
    assert code == 0 and signal["bar"] == LAST_BAR.isoformat() and -1 <= signal["position"] <= 1
    assert signal["held_from"] == "path" and signal["path_start"] == "2018-08-11T08:00:00+00:00"
    assert list(signal["regime"]) == ["p_state_0", "p_state_1", "p_state_2", "p_state_3", "regime_entropy"]
    assert sum(signal["regime"][f"p_state_{k}"] for k in range(4)) == pytest.approx(1.0)
    assert signal["position"] == pytest.approx(float(lines[1].split()[2]), abs=5e-5)  # text and JSON agree


def test_signal_acts_on_complete_bars_only_and_measures_their_age(live):
    store = ArtifactStore(live.store_url)
    now = LAST_BAR + pd.Timedelta(minutes=90)
    closed = compute_signal(store, live.data, now=now)
    assert closed.bar == LAST_BAR and closed.bar_age_hours == 0.5
    assert closed.champion_age_hours == (now - closed.promoted_at) / pd.Timedelta(hours=1)
    forming = compute_signal(store, live.data, now=LAST_BAR + pd.Timedelta(minutes=30))  # 23:00 closes at 00:00
    assert forming.bar == LAST_BAR - pd.Timedelta(hours=1) and forming.bar_age_hours == 0.5
    given = compute_signal(store, live.data, now=LAST_BAR + pd.Timedelta(minutes=90), held=0.25)
    assert given.held == 0.25 and given.held_from == "given" and given.bar == LAST_BAR


def test_the_signal_s_path_starts_at_most_run_in_bars_before_the_newest_bar(live):
    signal = compute_signal(ArtifactStore(live.store_url), live.data, config=SignalConfig(float("inf"), run_in_bars=24))
    assert signal.path_start == LAST_BAR - pd.Timedelta(hours=23) and signal.held_from == "path"


@pytest.fixture(scope="module")
def bad_inputs(live, trained, tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Per bad input: (data, store) that `signal` must refuse."""
    root = tmp_path_factory.mktemp("bad-inputs")
    ohlcv = trained.ohlcv.reset_index()
    invalid = ohlcv.copy()
    invalid.loc[300, "high"] = invalid.loc[300, "low"] / 2
    invalid.to_csv(root / "btcusdt-1h.csv", index=False)
    (root / "short").mkdir()
    ohlcv.iloc[:250].to_parquet(root / "short" / "btcusdt-1h.parquet", index=False)
    tampered = f"file://{root / 'tampered'}"
    challenger = trained.challengers(tampered)[1, 0]
    promote(ArtifactStore(tampered), [challenger])
    record = ArtifactStore(tampered).read_json(registry.version_key(DATASET, 1))
    record["configs"]["mae"]["d_model"] = 64  # the record no longer matches its checkpoints
    ArtifactStore(tampered).write_json(registry.version_key(DATASET, 1), record)
    return {"invalid": (str(root / "btcusdt-1h.csv"), live.store_url),
            "short": (str(root / "short" / "btcusdt-1h.parquet"), live.store_url),
            "stale": (live.data, live.store_url),
            "no champion": (live.data, f"file://{root}"),  # a store that exists and holds no registry
            "mismatch": (challenger.data.uri, tampered)}


@pytest.mark.parametrize("case, error, message, staleness", [
    ("invalid", DataError, r"btcusdt-1h.csv: high \S+ < low \S+ in columns 'high'/'low' at row 301", "inf"),
    ("short", DataError, r"btcusdt-1h.parquet: 250 bars is too few: the features need 200 warm-up bars", "inf"),
    ("stale", DataError, r"the newest complete bar 2018-08-18 23:00 UTC closed [\d,.]+ h ago, over the 2 h limit: "
                         r"append newer bars", None),
    ("no champion", ArtifactNotFoundError, r"no champion for data source 'btcusdt-1h' in file://\S+ yet", "inf"),
    ("mismatch", ModelDimensionsError, r"btcusdt-1h v1 \(model \w+\): checkpoint \S+checkpoint.pt has "
                                       r"mae.d_model=32 \(expected 64\)", "inf"),
])
def test_signal_refuses_bad_input_in_one_line_with_exit_2(bad_inputs, case, error, message, staleness, capsys):
    data, store_url = bad_inputs[case]
    config = SignalConfig() if staleness is None else SignalConfig(float(staleness))
    with pytest.raises(error, match=message):
        compute_signal(ArtifactStore(store_url), data, config=config)
    assert issubclass(error, CryptoRLError)
    code, out, err = run_cli(capsys, "signal", "--data", data, "--storage", store_url,
                             *([] if staleness is None else ["--max-staleness", staleness]))
    assert code == 2 and out == "" and err.startswith("cryptorl: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
