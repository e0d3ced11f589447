"""The 50 causal, scale-free technical features every model in the pipeline sees.

Every value at bar t is computed from bars <= t only: rolling windows, `ewm(adjust=False)` recursions and
backward shifts, never a centred window, a forward shift or a whole-series statistic. `check_truncation_invariance`
(cryptorl/features/causality.py) proves it bit for bit. Every value is a ratio, a log-return or a bounded
oscillator, never a raw price or volume, so a scaler fit on 2018 prices still means something in 2023.

Gap-filled bars (o = h = l = c, volume 0) produce zero returns, zero ranges and zero rolling deviations; each
division by such a quantity has an explicit neutral fallback so they never produce inf or NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptorl.errors import DataError

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")

# One line per feature; the order here is the column order of `technical_features`.
FEATURE_DOCS: dict[str, str] = {
    "ret_1": "log-return of close over 1 bar",
    "ret_2": "log-return of close over 2 bars",
    "ret_4": "log-return of close over 4 bars",
    "ret_8": "log-return of close over 8 bars",
    "ret_12": "log-return of close over 12 bars",
    "ret_24": "log-return of close over 24 bars",
    "ret_48": "log-return of close over 48 bars",
    "ret_72": "log-return of close over 72 bars",
    "ret_168": "log-return of close over 168 bars (one week of hours)",
    "rv_12": "realized vol: rolling std of 1-bar log-returns over 12 bars",
    "rv_24": "realized vol: rolling std of 1-bar log-returns over 24 bars",
    "rv_72": "realized vol: rolling std of 1-bar log-returns over 72 bars",
    "rv_168": "realized vol: rolling std of 1-bar log-returns over 168 bars",
    "pk_24": "Parkinson vol over 24 bars: sqrt(mean(log(h/l)^2) / (4 ln 2))",
    "gk_24": "Garman-Klass vol over 24 bars: sqrt(mean(0.5 log(h/l)^2 - (2 ln 2 - 1) log(c/o)^2))",
    "rv_ratio_12_72": "log of rv_12 / rv_72 (short-term vol expansion), floored so flat bars stay finite",
    "rv_ratio_24_168": "log of rv_24 / rv_168 (vol regime shift), floored so flat bars stay finite",
    "rsi_14": "Wilder RSI over 14 bars of log-returns, rescaled from [0, 100] to [-1, 1]",
    "rsi_48": "Wilder RSI over 48 bars of log-returns, rescaled from [0, 100] to [-1, 1]",
    "macd": "MACD line (EMA12 - EMA26 of close) divided by close",
    "macd_signal": "MACD signal (EMA9 of the MACD line) divided by close",
    "macd_hist": "MACD histogram (line - signal) divided by close",
    "bb_pctb_20": "Bollinger %b over 20 bars, +-2 std: 0 at the lower band, 1 at the upper band",
    "bb_width_20": "Bollinger bandwidth over 20 bars: (upper - lower) / middle",
    "atr_14": "Wilder average true range over 14 bars divided by close",
    "stoch_k_14": "stochastic %K over 14 bars: (close - lowest low) / (highest high - lowest low)",
    "stoch_d_14": "stochastic %D: 3-bar mean of stoch_k_14",
    "dist_max_24": "log of close / highest high of the last 24 bars (<= 0)",
    "dist_min_24": "log of close / lowest low of the last 24 bars (>= 0)",
    "dist_max_168": "log of close / highest high of the last 168 bars (<= 0)",
    "dist_min_168": "log of close / lowest low of the last 168 bars (>= 0)",
    "close_ema_12": "log of close / EMA(12) of close",
    "close_ema_48": "log of close / EMA(48) of close",
    "close_ema_168": "log of close / EMA(168) of close",
    "close_sma_24": "log of close / SMA(24) of close",
    "close_sma_72": "log of close / SMA(72) of close",
    "close_sma_200": "log of close / SMA(200) of close",
    "vol_z_24": "z-score of log1p(volume) against its last 24 bars",
    "vol_z_168": "z-score of log1p(volume) against its last 168 bars",
    "vol_trend_24_168": "mean log1p(volume) over 24 bars minus over 168 bars (activity trend)",
    "candle_body": "(close - open) / (high - low), in [-1, 1]; 0 on a flat bar",
    "candle_upper": "upper wick (high - max(open, close)) / (high - low), in [0, 1]; 0 on a flat bar",
    "candle_lower": "lower wick (min(open, close) - low) / (high - low), in [0, 1]; 0 on a flat bar",
    "candle_range": "log(high / low), the bar's own range",
    "ret_skew_72": "skewness of 1-bar log-returns over 72 bars; 0 when they are all equal",
    "ret_kurt_72": "excess kurtosis of 1-bar log-returns over 72 bars; 0 when they are all equal",
    "hour_sin": "sin of the UTC time of day (24 h cycle)",
    "hour_cos": "cos of the UTC time of day (24 h cycle)",
    "dow_sin": "sin of the UTC day of week (7 day cycle, Monday 00:00 = 0)",
    "dow_cos": "cos of the UTC day of week (7 day cycle, Monday 00:00 = 0)",
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_DOCS)

RETURN_HORIZONS = (1, 2, 4, 8, 12, 24, 48, 72, 168)
# The longest window (SMA 200) needs 200 bars; every column is NaN on exactly these leading rows and
# finite after them, so downstream code drops one fixed prefix for all 50 columns.
WARMUP_BARS = 200
# Floor added to realized vols before taking their log ratio: an hourly vol of 1e-6 is far below any
# traded market (BTC's is ~1e-2) but keeps a day of gap-filled flat bars from giving log(0).
_VOL_FLOOR = 1e-6
# Rolling deviations at or below this count as "all values equal" (pandas returns ~1e-17, not 0, there).
_ZERO_DEVIATION = 1e-12


def technical_features(ohlcv: pd.DataFrame) -> pd.DataFrame:
    """The 50 features of `FEATURE_NAMES` on `ohlcv`'s index (float64; NaN on the first WARMUP_BARS rows)."""
    _validate(ohlcv)
    o, h, l, c = (ohlcv[name].astype(np.float64) for name in ("open", "high", "low", "close"))
    log_volume = np.log1p(ohlcv["volume"].astype(np.float64))
    ret_1 = np.log(c).diff()
    columns = {
        **_returns(c),
        **_volatility(o, h, l, c, ret_1),
        **_oscillators(h, l, c, ret_1),
        **_trend(h, l, c),
        **_volume(log_volume),
        **_candle(o, h, l, c),
        **_distribution(ret_1),
        **_calendar(ohlcv.index),
    }
    features = pd.DataFrame(columns, index=ohlcv.index)[list(FEATURE_NAMES)].astype(np.float64)  # (T, 50)
    features.iloc[:WARMUP_BARS] = np.nan
    return features


def _validate(ohlcv: pd.DataFrame) -> None:
    missing = [name for name in OHLCV_COLUMNS if name not in ohlcv.columns]
    if missing:
        raise DataError(f"OHLCV frame lacks column(s) {missing}: pass a frame with columns {list(OHLCV_COLUMNS)}")
    if not isinstance(ohlcv.index, pd.DatetimeIndex):
        raise DataError(
            f"OHLCV frame is indexed by {type(ohlcv.index).__name__}: index it by a UTC DatetimeIndex "
            "(e.g. frame.set_index('timestamp'))"
        )
    for name in OHLCV_COLUMNS:
        # Negated comparisons so NaN counts as bad too; logs need prices > 0 and log1p needs volume >= 0.
        bad = ~(ohlcv[name] >= 0) if name == "volume" else ~(ohlcv[name] > 0)
        if bad.any():
            kind = "negative or NaN volume" if name == "volume" else "non-positive or NaN price"
            raise DataError(
                f"OHLCV column {name!r} has a {kind} at {bad.idxmax()}: fix or drop that bar before computing features"
            )


def _safe_div(num: pd.Series, den: pd.Series, fallback: float) -> pd.Series:
    """num / den, with `fallback` where |den| <= _ZERO_DEVIATION (flat windows) instead of inf/NaN."""
    flat = den.abs() <= _ZERO_DEVIATION
    return (num / den.mask(flat)).mask(flat, fallback)


def _returns(c: pd.Series) -> dict[str, pd.Series]:
    log_c = np.log(c)
    return {f"ret_{n}": log_c - log_c.shift(n) for n in RETURN_HORIZONS}


def _volatility(o: pd.Series, h: pd.Series, l: pd.Series, c: pd.Series, ret_1: pd.Series) -> dict[str, pd.Series]:
    rv = {n: ret_1.rolling(n).std() for n in (12, 24, 72, 168)}
    hl2 = np.log(h / l) ** 2
    co2 = np.log(c / o) ** 2
    # Per bar 0.5 hl2 - 0.386 co2 >= 0 because |log(c/o)| <= log(h/l); clip only rounding below zero.
    gk_var = (0.5 * hl2 - (2 * np.log(2) - 1) * co2).rolling(24).mean().clip(lower=0.0)
    return {
        **{f"rv_{n}": vol for n, vol in rv.items()},
        "pk_24": np.sqrt(hl2.rolling(24).mean() / (4 * np.log(2))),
        "gk_24": np.sqrt(gk_var),
        "rv_ratio_12_72": np.log((rv[12] + _VOL_FLOOR) / (rv[72] + _VOL_FLOOR)),
        "rv_ratio_24_168": np.log((rv[24] + _VOL_FLOOR) / (rv[168] + _VOL_FLOOR)),
    }


def _wilder(x: pd.Series, n: int) -> pd.Series:
    """Wilder's smoothing (EMA with alpha 1/n), a causal recursion."""
    return x.ewm(alpha=1.0 / n, adjust=False).mean()


def _rsi(ret_1: pd.Series, n: int) -> pd.Series:
    gain = _wilder(ret_1.clip(lower=0.0), n)
    loss = _wilder((-ret_1).clip(lower=0.0), n)
    return 2.0 * _safe_div(gain, gain + loss, fallback=0.5) - 1.0  # RSI/100 mapped to [-1, 1]


def _oscillators(h: pd.Series, l: pd.Series, c: pd.Series, ret_1: pd.Series) -> dict[str, pd.Series]:
    macd = c.ewm(span=12, adjust=False).mean() - c.ewm(span=26, adjust=False).mean()
    signal = macd.ewm(span=9, adjust=False).mean()
    mid, std = c.rolling(20).mean(), c.rolling(20).std()
    true_range = pd.concat([h - l, (h - c.shift(1)).abs(), (l - c.shift(1)).abs()], axis=1).max(axis=1)
    low_14, high_14 = l.rolling(14).min(), h.rolling(14).max()
    stoch_k = _safe_div(c - low_14, high_14 - low_14, fallback=0.5)
    return {
        "rsi_14": _rsi(ret_1, 14),
        "rsi_48": _rsi(ret_1, 48),
        "macd": macd / c,
        "macd_signal": signal / c,
        "macd_hist": (macd - signal) / c,
        # Bands are mid +- 2 std, so %b = 0.5 + (c - mid) / (4 std); the flat-window guard is relative to price.
        "bb_pctb_20": 0.5 + _safe_div((c - mid) / mid, 4.0 * std / mid, fallback=0.0),
        "bb_width_20": 4.0 * std / mid,
        "atr_14": _wilder(true_range, 14) / c,
        "stoch_k_14": stoch_k,
        "stoch_d_14": stoch_k.rolling(3).mean(),
    }


def _trend(h: pd.Series, l: pd.Series, c: pd.Series) -> dict[str, pd.Series]:
    log_c = np.log(c)
    return {
        **{f"dist_max_{n}": log_c - np.log(h.rolling(n).max()) for n in (24, 168)},
        **{f"dist_min_{n}": log_c - np.log(l.rolling(n).min()) for n in (24, 168)},
        **{f"close_ema_{n}": log_c - np.log(c.ewm(span=n, adjust=False).mean()) for n in (12, 48, 168)},
        **{f"close_sma_{n}": log_c - np.log(c.rolling(n).mean()) for n in (24, 72, 200)},
    }


def _volume(log_volume: pd.Series) -> dict[str, pd.Series]:
    def z_score(n: int) -> pd.Series:
        window = log_volume.rolling(n)
        return _safe_div(log_volume - window.mean(), window.std(), fallback=0.0)

    return {
        "vol_z_24": z_score(24),
        "vol_z_168": z_score(168),
        "vol_trend_24_168": log_volume.rolling(24).mean() - log_volume.rolling(168).mean(),
    }


def _candle(o: pd.Series, h: pd.Series, l: pd.Series, c: pd.Series) -> dict[str, pd.Series]:
    bar_range = h - l  # exactly 0 on a flat bar, where every shape ratio falls back to 0
    return {
        "candle_body": _safe_div(c - o, bar_range, fallback=0.0),
        "candle_upper": _safe_div(h - np.maximum(o, c), bar_range, fallback=0.0),
        "candle_lower": _safe_div(np.minimum(o, c) - l, bar_range, fallback=0.0),
        "candle_range": np.log(h / l),
    }


def _distribution(ret_1: pd.Series) -> dict[str, pd.Series]:
    window = ret_1.rolling(72)
    flat = window.std() <= _ZERO_DEVIATION  # pandas gives NaN skew/kurt on a window of equal returns
    return {"ret_skew_72": window.skew().mask(flat, 0.0), "ret_kurt_72": window.kurt().mask(flat, 0.0)}


def _calendar(index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Cyclical time of day and day of week; a naive index is taken to be UTC already."""
    utc = index.tz_convert("UTC") if index.tz is not None else index
    hour = utc.hour.to_numpy(np.float64) + utc.minute.to_numpy(np.float64) / 60.0  # fractional for sub-hour bars
    day_angle = 2 * np.pi * hour / 24.0
    week_angle = 2 * np.pi * (utc.day_of_week.to_numpy(np.float64) + hour / 24.0) / 7.0
    return {
        "hour_sin": np.sin(day_angle),
        "hour_cos": np.cos(day_angle),
        "dow_sin": np.sin(week_angle),
        "dow_cos": np.cos(week_angle),
    }
