"""Walk-forward evaluation: the out-of-sample result of many segments and seeds, and how much to trust it.

- `series`: the per-bar series each audit stores (`series.parquet`), the contract with the audit stage;
- `stitch`: consecutive segments' test slices joined into one series per policy, overlaps and gaps reported;
- `bootstrap`: stationary block bootstrap intervals of Sharpe ratios and of their difference vs buy & hold;
- `deflated`: the deflated Sharpe ratio from the number of trials and their Sharpe ratios' variance;
- `trials`: every audited (configuration, seed) run, recorded in the store per data source;
- `summary` and `markdown`: the `wfo-summary` of a walk-forward, stored as JSON and shown in the UI.

Pure library (no Prefect): the full-wfo flow gathers the audit reports and calls `summarize_walk_forward`.
"""
