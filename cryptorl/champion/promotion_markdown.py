"""The `promotion` artifact: which way a decision went, why, and the numbers behind it (rule: promotion.py)."""

from __future__ import annotations

from cryptorl.audit.verdict import HEALTHY
from cryptorl.champion.promotion import CandidateScore, Decision, floor_text, sharpe_text
from cryptorl.champion.registry import seeds_text
from cryptorl.data.validation import format_timestamp


def promotion_markdown(decision: Decision) -> str:
    """The `promotion` artifact: which way, why, the numbers of the challenger, the champion and every candidate."""
    after = f"champion v{decision.version}" if decision.version else "no live champion"
    lines = [f"# Promotion {decision.outcome.upper()}: {decision.dataset}, {after}", "", decision.reason, ""]
    rows = _comparison_rows(decision)
    if rows:  # no table at all when there is neither a promotable challenger nor a champion
        lines += [
            "| | segment | seed | verdict | net test Sharpe (challenger's slice) | audit Sharpe | model |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    lines += [
        "",
        "Candidates (one per seed, and the seed ensemble of the healthy ones; the best promotable one is "
        "the challenger):",
        "",
    ]
    lines += [_candidate_line(score) for score in decision.candidates]
    lines += [
        "",
        "Rule: the challenger is the best healthy seed whose test slice starts no earlier than the "
        "champion's and whose net Sharpe at w_cost 1 with the real fee beats the floor's baselines on that "
        "slice; it replaces the champion only if it also beats the champion's, re-scored on the challenger's "
        "test slice with the champion's own scaler, HMM, encoder and agent. A champion that stays but no "
        "longer clears the floor there is retired.",
        f"Decision {decision.id} at {format_timestamp(decision.at)}"
        + (f" (judged again after {decision.lost_races} lost race(s))" if decision.lost_races else "")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def _comparison_rows(decision: Decision) -> list[str]:
    """The challenger's and the champion's table rows, for those that exist."""
    rows = []
    if decision.challenger is not None:
        c = decision.challenger
        rows.append(
            f"| challenger | {c.segment} | {seeds_text(c.seeds)} | {c.verdict} | {sharpe_text(c.sharpe)} | "
            f"{sharpe_text(c.audit_sharpe)} | {c.model_id} |"
        )
    if decision.champion is not None:
        k = decision.champion
        rows.append(
            f"| champion v{k.version} ({k.profile}), promoted {format_timestamp(k.promoted_at)}, "
            f"{k.age_hours:.1f} h ago | {k.segment} | {seeds_text(k.seeds)} | {HEALTHY} | {sharpe_text(k.sharpe)} | "
            f"{sharpe_text(k.own_sharpe)} (own slice) | {k.model_id} |"
        )
    floor = next(
        (score.floor for score in decision.candidates if score.floor is not None),
        decision.champion.floor if decision.champion is not None else None,
    )
    rows += [f"| floor: {name} | | | | {value:.3f} | | |" for name, value in (floor or {}).items()] if rows else []
    return rows


def _candidate_line(score: CandidateScore) -> str:
    return (
        f"- {score.label}: verdict {score.verdict}, net test Sharpe {sharpe_text(score.sharpe)} (audit "
        f"{sharpe_text(score.audit_sharpe)}), test slice {format_timestamp(score.test_first)} .. "
        f"{format_timestamp(score.test_last)}"
        + (f", floor {floor_text(score.floor)}" if score.floor is not None else "")
        + (f"; not promotable: {score.excluded}" if score.excluded else "")
    )
