"""The model stack: CryptoMAE (pretrained, then frozen), its checkpoints, and the SB3 feature extractor."""

from cryptorl.models.checkpoint import MAECheckpoint, ModelDimensionsValidator, load_mae, load_mae_checkpoint, save_mae
from cryptorl.models.foundation import CryptoMAE, MAEConfig
from cryptorl.models.layers import FiLMLayer
from cryptorl.models.pretrain import PretrainResult, pretrain_mae
from cryptorl.models.rl_adapter import (
    HEADS,
    EncoderCache,
    FoundationFeatureExtractor,
    attach_encoder_cache,
    build_encoder_cache,
)

__all__ = [
    "HEADS",
    "CryptoMAE",
    "EncoderCache",
    "FiLMLayer",
    "FoundationFeatureExtractor",
    "MAECheckpoint",
    "MAEConfig",
    "ModelDimensionsValidator",
    "PretrainResult",
    "attach_encoder_cache",
    "build_encoder_cache",
    "load_mae",
    "load_mae_checkpoint",
    "pretrain_mae",
    "save_mae",
]
