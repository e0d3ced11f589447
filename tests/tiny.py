"""The tiny encoder / env / TQC configuration the unit tests train in about a second."""

from cryptorl.config import EnvConfig, MAEConfig, TrainConfig
from cryptorl.models import CryptoMAE

TINY_MAE = MAEConfig(d_model=8, n_heads=2, n_layers=1, dim_feedforward=16, dropout=0.0)
TINY_ENV = EnvConfig(episode_length=32)
TINY_TRAIN = TrainConfig(total_timesteps=64, n_envs=4, batch_size=16, replay_ratio=0.5, learning_starts=16,
                         buffer_size=1_000, net_arch=(16, 16), features_dim=16, checkpoints=2, eval_steps=8,
                         log_every_steps=16, device="cpu")


def tiny_encoder() -> CryptoMAE:
    return CryptoMAE(TINY_MAE)
