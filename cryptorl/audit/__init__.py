"""The audit: backtests of the trained policy and its baselines, and the metrics they are judged by."""

from cryptorl.audit.backtest import BacktestResult, RewardStats, WCostRun, backtest, backtest_many, metrics_table
from cryptorl.audit.metrics import BacktestMetrics, compute_metrics, equity_curve, net_returns
from cryptorl.audit.policies import ConstantPolicy, MomentumPolicy, Policy, RandomPolicy, TrainedPolicy, make_policy

__all__ = [
    "BacktestMetrics",
    "BacktestResult",
    "ConstantPolicy",
    "MomentumPolicy",
    "Policy",
    "RandomPolicy",
    "RewardStats",
    "TrainedPolicy",
    "WCostRun",
    "backtest",
    "backtest_many",
    "compute_metrics",
    "equity_curve",
    "make_policy",
    "metrics_table",
    "net_returns",
]
