"""Store a walk-forward summary under `wfo/<fingerprint>/` and render it for the Prefect UI.

`summary.json` (every number of the summary), `series.parquet` (the stitched positions and net returns of
every policy) and `equity.png` (the stitched equity curves). The fingerprint is that of the summary's
content, so the same walk-forward summarized again lands in the same place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cryptorl.audit import plots
from cryptorl.audit.metrics import equity_curve
from cryptorl.evaluation.markdown import summary_markdown
from cryptorl.evaluation.series import net_column
from cryptorl.evaluation.stitch import Stitched
from cryptorl.evaluation.summary import WFOSummary, ordered_labels
from cryptorl.hashing import fingerprint
from cryptorl.storage import ArtifactRef, ArtifactStore


@dataclass(frozen=True)
class PublishedSummary:
    markdown: str  # with the equity plot inline
    refs: dict[str, ArtifactRef]  # summary, and series + equity when there is a stitched series


def stitched_frame(stitched: Stitched, fee: float) -> pd.DataFrame:
    """The stitched series to store: segment, log_return, and position and net per policy (T, 2 + 2K)."""
    frame = stitched.frame.copy()
    for label in stitched.labels:
        frame[net_column(label)] = stitched.net(label, fee)
    return frame


def equity_png(stitched: Stitched, fee: float) -> bytes:
    """The stitched equity curves (net of the real fee) of every policy on one axis."""
    curves = {label: equity_curve(stitched.net(label, fee)) for label in ordered_labels(stitched.labels)}
    return plots.equity_plot(stitched.frame.index, curves, "Stitched out-of-sample equity (net of fees)")


def summary_json(summary: WFOSummary) -> dict[str, Any]:
    """The summary as plain JSON values (timestamps as ISO text)."""
    return json.loads(json.dumps(dataclasses.asdict(summary), default=str))


def summary_store(storage: str | None, reports: list[tuple[dict[str, Any], str]]) -> ArtifactStore:
    """`storage`, else the store the audits wrote to (segment runs on workers use the workers' store)."""
    written_to = next((report["store"] for report, _ in reports if report.get("store")), None)
    return ArtifactStore(storage or written_to)


def publish_summary(store: ArtifactStore, summary: WFOSummary, stitched: Stitched | None) -> PublishedSummary:
    """Write summary.json, series.parquet and equity.png under `wfo/<fingerprint>/`; the markdown links them."""
    content = summary_json(summary)
    prefix = f"wfo/{fingerprint(content)[:16]}"
    refs, equity = {}, None
    if stitched is not None and summary.fee is not None:
        png = equity_png(stitched, summary.fee)
        refs["series.parquet"] = store.write_frame(f"{prefix}/series.parquet", stitched_frame(stitched, summary.fee))
        refs["equity.png"] = store.write_bytes(f"{prefix}/equity.png", png)
        equity = plots.embed_png(png, "stitched equity")
    links = {name: ref.uri for name, ref in refs.items()}
    refs["summary.json"] = store.write_json(f"{prefix}/summary.json", content | {"links": links})
    markdown = summary_markdown(summary, equity, {"summary.json": refs["summary.json"].uri, **links})
    return PublishedSummary(markdown, refs)
