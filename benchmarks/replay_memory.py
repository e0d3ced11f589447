"""Bytes per stored transition: CompactReplayBuffer vs SB3's DictReplayBuffer, and the RAM for 1M transitions.

Both buffers are built for BatchCryptoEnv's observation space ((64, 55) market window, position, w_cost,
bar_index) with a small capacity; per-transition bytes are their arrays' nbytes / capacity. (SB3's
`optimize_memory_usage` is not available for Dict observations, so DictReplayBuffer stores obs and next obs.)
The shared MarketData (the windows' source) is listed separately: the env holds it anyway.
Runs in seconds; the headline is the last line.
"""

from __future__ import annotations

from stable_baselines3.common.buffers import DictReplayBuffer

from cryptorl.envs import BatchCryptoEnv, EnvConfig, MarketData
from cryptorl.training import CompactReplayBuffer

CAPACITY = 1000
MILLION = 1_000_000


def dict_buffer_nbytes(buffer: DictReplayBuffer) -> int:
    arrays = [*buffer.observations.values(), *buffer.next_observations.values(),
              buffer.actions, buffer.rewards, buffer.dones, buffer.timeouts]
    return sum(array.nbytes for array in arrays)


def main() -> None:
    market = MarketData.random(1000, n_features=55, seed=0)
    env = BatchCryptoEnv(market, 1, EnvConfig(), include_bar_index=True)
    spaces = (env.observation_space, env.action_space)
    compact = CompactReplayBuffer(CAPACITY, *spaces, device="cpu", market=market)
    reference = DictReplayBuffer(CAPACITY, *spaces, device="cpu")

    compact_bytes = compact.bytes_per_transition
    dict_bytes = dict_buffer_nbytes(reference) / CAPACITY
    # A 55,740-bar span (all of the bundled data) is the largest MarketData one segment can hold.
    market_bytes = 55_740 * (market.n_features * 4 + 8)
    print(f"DictReplayBuffer: {dict_bytes:,.0f} bytes per transition -> {dict_bytes * MILLION / 2**30:.1f} GiB for 1M")
    print(f"CompactReplayBuffer: {compact_bytes:,.0f} bytes per transition -> "
          f"{compact_bytes * MILLION / 2**20:.0f} MiB for 1M (+ {market_bytes / 2**20:.0f} MiB of shared market data "
          f"at most)")
    print(f"reduction: {dict_bytes / compact_bytes:,.0f}x")
    print(f"bytes_per_transition={compact_bytes:.0f}")


if __name__ == "__main__":
    main()
