"""The champion of a data source: who is live, how a challenger replaces it, and what it says now.

- `registry`: write-once model versions, the champion pointer and the decision log in the artifact store.
- `promotion`: the champion / challenger rule with the promotion floor; `promotion_markdown` renders a decision.
- `live`: the champion re-scored on new bars, and its signal for the newest complete bar.
"""
