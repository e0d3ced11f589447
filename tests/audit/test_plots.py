"""Plots embedded in markdown artifacts: a data URI the UI renders, downscaled to stay small."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from cryptorl.audit.plots import EMBED_MAX_WIDTH, embed_png, equity_plot


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
