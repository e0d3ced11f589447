"""Plots embedded in markdown artifacts: a data URI the UI renders, downscaled to stay small."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from cryptorl.audit.plots import EMBED_MAX_WIDTH, cost_frontier_plot, embed_png, equity_plot, frontier_points


def test_embed_png_is_a_downscaled_inline_png():
    times = np.arange(500)
    png = equity_plot(times, {"trained": np.cumprod(np.full(500, 1.001)), "flat": np.ones(500)}, "equity")
    markdown = embed_png(png, "equity")
    match = re.fullmatch(r"!\[equity\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:80]
    image = Image.open(io.BytesIO(base64.b64decode(match[1])))
    assert image.format == "PNG"
    assert image.width == EMBED_MAX_WIDTH < Image.open(io.BytesIO(png)).width
    assert len(markdown) < 60_000


def test_the_cost_frontier_is_the_agent_over_w_cost_and_the_baselines_at_the_headline():
    rows = [{"policy": policy, "w_cost": w_cost, "sharpe": sharpe, "turnover": turnover}
            for policy, w_cost, sharpe, turnover in [
                ("trained", 2.0, 0.4, 0.01), ("trained", 0.0, 0.8, 0.20), ("trained", 1.0, None, 0.05),
                ("buy_and_hold", 1.0, 1.1, 0.0), ("buy_and_hold", 0.0, 1.1, 0.0), ("flat", 1.0, None, 0.0),
                ("momentum", 1.0, -0.3, 0.1)]]
    line, points = frontier_points(rows, "trained", 1.0)
    assert [row["w_cost"] for row in line] == [0.0, 2.0]  # by w_cost; an overflowing Sharpe (None) has no point
    assert [(row["policy"], row["w_cost"]) for row in points] == [("buy_and_hold", 1.0), ("momentum", 1.0)]
    image = Image.open(io.BytesIO(cost_frontier_plot(rows, "trained", 1.0, "cost frontier")))
    assert image.format == "PNG" and image.size == (700, 450)  # figsize (7, 4.5) at 100 dpi
