"""Audit plots as PNG bytes (matplotlib, headless), stored through the artifact store by the audit stage."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: GPU servers and CI have no display

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

EMBED_MAX_WIDTH = 720  # px: a plot embedded in a markdown artifact is downscaled to this width at most


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def embed_png(png: bytes, alt: str, max_width: int = EMBED_MAX_WIDTH) -> str:
    """Markdown that shows `png` inline in the Prefect UI: `![alt](data:image/png;base64,...)`.

    The image is downscaled to `max_width` and palette-quantized so an artifact with a few plots stays
    small (tens of kB); browsers do not open `file://` links from the UI, data URIs they render.
    """
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(colors=64).save(buffer, format="PNG", optimize=True)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def equity_plot(times: Sequence | np.ndarray, curves: dict[str, np.ndarray], title: str) -> bytes:
    """Equity curves (start 1.0) of the agent and the baselines on one axis."""
    figure, axis = plt.subplots(figsize=(10, 4))
    for name, curve in curves.items():
        axis.plot(times, curve, label=name, linewidth=2.0 if name == "trained" else 1.0)
    axis.set(title=title, ylabel="equity (net of fees)")
    axis.legend(loc="best")
    axis.grid(alpha=0.3)
    return _png(figure)


def position_plot(times: Sequence | np.ndarray, positions: np.ndarray, close: np.ndarray, title: str) -> bytes:
    """The agent's position over the test slice, price on a second axis."""
    figure, axis = plt.subplots(figsize=(10, 4))
    axis.step(times, positions, where="post", color="tab:blue", label="position")
    axis.set(title=title, ylabel="position", ylim=(-1.05, 1.05))
    price_axis = axis.twinx()
    price_axis.plot(times, close, color="tab:gray", alpha=0.6, label="close")
    price_axis.set_ylabel("close")
    axis.grid(alpha=0.3)
    return _png(figure)


def histogram_plot(values: np.ndarray, title: str, bins: int = 21) -> bytes:
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.hist(values, bins=np.linspace(-1, 1, bins + 1).tolist(), color="tab:blue", alpha=0.8)
    axis.set(title=title, xlabel="position", ylabel="count")
    return _png(figure)


def q_curve_plot(grid: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray, title: str) -> bytes:
    """Mean Q(s, a) over an action grid, with the 10-90 % band across sampled states."""
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(grid, mean, color="tab:red", label="mean over states")
    axis.fill_between(grid, low, high, color="tab:red", alpha=0.2, label="p10-p90 over states")
    axis.set(title=title, xlabel="action (target position)", ylabel="Q")
    axis.legend(loc="best")
    return _png(figure)


def attribution_plot(shares: dict[str, dict[str, float]], title: str) -> bytes:
    """Grouped bars: share of the actor's and the critic's sensitivity per input group."""
    groups = list(next(iter(shares.values())))
    figure, axis = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(shares)
    for offset, (network, by_group) in enumerate(shares.items()):
        axis.bar(np.arange(len(groups)) + offset * width, [by_group[g] for g in groups], width, label=network)
    axis.set_xticks(np.arange(len(groups)) + width * (len(shares) - 1) / 2, groups)
    axis.set(title=title, ylabel="share of sensitivity", ylim=(0, 1))
    axis.legend(loc="best")
    return _png(figure)


def cost_frontier_plot(rows: list[dict], agent: str, headline_w_cost: float, title: str) -> bytes:
    """Net Sharpe against turnover: `agent` at every audited w_cost as one line (each point labelled with its
    w_cost), every other policy as a point at `headline_w_cost`.

    One cost-conditioned policy is the MORL promise: raising w_cost should slide it along a frontier (less
    turnover, the Sharpe kept net of fees), and the baselines show what that frontier has to beat. Every
    point's Sharpe is net of the real fee, whatever cost weight the policy was conditioned on.
    """
    line, points = frontier_points(rows, agent, headline_w_cost)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(
        [row["turnover"] for row in line],
        [row["sharpe"] for row in line],
        "o-",
        color="black",
        linewidth=2.0,
        label=f"{agent} (w_cost on the points)",
    )
    for row in line:
        axis.annotate(
            f"w={row['w_cost']:g}",
            (row["turnover"], row["sharpe"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    for index, row in enumerate(points):
        axis.scatter(
            row["turnover"],
            row["sharpe"],
            marker="s",
            color=f"C{index % 10}",
            zorder=3,
            label=f"{row['policy']} (w_cost={headline_w_cost:g})",
        )
    axis.axhline(0.0, color="gray", linewidth=0.8)
    axis.set(
        title=title, xlabel="turnover (mean |Δposition| per bar)", ylabel="net Sharpe at the real fee (annualised)"
    )
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
    return _png(figure)


def frontier_points(rows: list[dict], agent: str, headline_w_cost: float) -> tuple[list[dict], list[dict]]:
    """(`agent`'s rows by increasing w_cost, the other policies' rows at `headline_w_cost`) among
    `metrics_table` rows; a row without a finite Sharpe (None) has no point."""
    plotted = [row for row in rows if row.get("sharpe") is not None and row.get("turnover") is not None]
    line = sorted((row for row in plotted if row["policy"] == agent), key=lambda row: row["w_cost"])
    return line, [row for row in plotted if row["policy"] != agent and row["w_cost"] == headline_w_cost]
