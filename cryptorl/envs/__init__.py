"""Trading environments: one market-data container, a batched torch VecEnv for training, a single gym env."""

from cryptorl.config import EnvConfig
from cryptorl.envs.batch_env import BatchCryptoEnv
from cryptorl.envs.market import (
    BAR_INDEX,
    MARKET,
    POSITION,
    W_COST,
    MarketData,
    observes_market,
    resolve_reward_scale,
)
from cryptorl.envs.single_env import CryptoTradingEnv

__all__ = [
    "BAR_INDEX",
    "MARKET",
    "POSITION",
    "W_COST",
    "BatchCryptoEnv",
    "CryptoTradingEnv",
    "EnvConfig",
    "MarketData",
    "observes_market",
    "resolve_reward_scale",
]
