"""Copy a segment's TensorBoard logs from the artifact store to a local folder TensorBoard can read.

Training uploads its event files under `segments/<n>/<stage>/<fingerprint>/tensorboard/`. TensorBoard
reads local folders (or needs extra plugins for S3), so `cryptorl tensorboard` mirrors those keys into a
cache folder with the same layout: every training run then shows up in TensorBoard as
`segments/<n>/<stage>/<fingerprint>/tensorboard`. A stored log lives under a content fingerprint and is
never rewritten, so a file already in the cache is not downloaded again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from cryptorl.errors import ArtifactNotFoundError
from cryptorl.hashing import fingerprint
from cryptorl.storage import ArtifactStore

TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_HOST = "127.0.0.1"  # local only: the logs may reveal strategy details


@dataclass(frozen=True)
class SyncReport:
    source: str
    local_dir: Path
    files: int
    downloaded: int

    def summary(self) -> str:
        return (
            f"synced {self.files:,} TensorBoard files ({self.downloaded:,} new) from {self.source} to {self.local_dir}"
        )


def default_cache_dir(store: ArtifactStore) -> Path:
    """One cache folder per store, so logs of different stores never mix."""
    return Path.home() / ".cache" / "cryptorl" / "tensorboard" / fingerprint(store.url)[:12]


def tensorboard_keys(store: ArtifactStore, segment: int | None = None) -> list[str]:
    """Keys of every file below a `tensorboard/` folder of one segment (or of all segments)."""
    prefix = "segments" if segment is None else f"segments/{segment}"
    return [key for key in store.list(prefix) if TENSORBOARD_DIR in key.split("/")[:-1]]


def sync_tensorboard(store: ArtifactStore, local_dir: Path, segment: int | None = None) -> SyncReport:
    """Mirror the TensorBoard keys of `segment` (None: all segments) into `local_dir`, keeping their layout."""
    store.check_exists()
    keys = tensorboard_keys(store, segment)
    source = store.uri("segments" if segment is None else f"segments/{segment}")
    if not keys:
        raise ArtifactNotFoundError(
            f"no TensorBoard logs under {source}: train the segment first "
            "(cryptorl run --segment N) or point --storage at the store it used"
        )
    local = ArtifactStore(f"file://{local_dir}")
    missing = [key for key in keys if not (local_dir / key).exists()]
    for key in missing:
        local.write_bytes(key, store.read_bytes(key))  # atomic: TensorBoard never reads half a file
    return SyncReport(source=source, local_dir=local_dir, files=len(keys), downloaded=len(missing))


def tensorboard_command(log_dir: Path, port: int) -> list[str]:
    """The TensorBoard server of this interpreter's environment, bound to localhost."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(log_dir),
        "--host",
        TENSORBOARD_HOST,
        "--port",
        str(port),
    ]
