"""CryptoMAE pretraining per profile on the bundled data (segment 0): seconds per epoch and eval loss / baseline.

The baseline predicts each masked bar by the mean of its window's visible bars; a ratio below 1 means the
encoder learned temporal structure. smoke runs its full schedule; cpu and gpu run `EPOCHS` epochs each
(the gpu size on this CPU only to time it), so their loss ratio is an early-training figure. The last
line is the smoke profile's ratio.
"""

from __future__ import annotations

import dataclasses

import torch

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile
from cryptorl.models import pretrain_mae
from cryptorl.stages.mae import slice_windows_source
from cryptorl.storage import ArtifactStore

EPOCHS = {"smoke": None, "cpu": 2, "gpu": 1}  # None: the profile's own schedule


def main() -> None:
    torch.set_num_threads(2)
    headline = 0.0
    for name, epochs in EPOCHS.items():
        profile = get_profile(name)
        store = ArtifactStore("memory://mae-benchmark")
        split = stages.split_segment(store, stages.source_ref(str(DEFAULT_DATA_PATH)), 0, profile.data,
                                     profile.features, profile.wfo)
        segment = stages.load_segment(store, split)
        config = profile.mae if epochs is None else dataclasses.replace(profile.mae, max_epochs=epochs)
        result = pretrain_mae(slice_windows_source(segment, "train", config.window),
                              slice_windows_source(segment, "eval", config.window), config, seed=0, progress=False)
        ratio = result.best_eval_loss / result.baseline_eval_loss
        print(f"{name:5s} d_model={config.d_model:3d} layers={config.n_layers} epochs={result.epochs_run:3d} "
              f"({config.steps_per_epoch} x {config.batch_size} windows): {result.seconds / result.epochs_run:6.1f} "
              f"s/epoch, {result.seconds:7.1f} s, eval {result.best_eval_loss:.4f} vs naive "
              f"{result.baseline_eval_loss:.4f} (ratio {ratio:.3f})")
        headline = ratio if name == "smoke" else headline
    print(f"smoke_eval_to_baseline={headline:.3f}")


if __name__ == "__main__":
    main()
