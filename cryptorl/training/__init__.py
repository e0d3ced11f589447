"""Training: SB3/sb3-contrib plumbing (replay buffers, callbacks, the TQC run)."""

from cryptorl.training.replay import CompactReplayBuffer

__all__ = ["CompactReplayBuffer"]
