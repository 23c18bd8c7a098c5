"""MNIST, loaded once per process: from a folder of IDX files offline, from Keras online.

The folder is named by ``--data-dir`` or the ``MNIST_DATA`` environment variable and
holds the four standard files, gzip-compressed or not.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import zlib
from pathlib import Path

import numpy as np

from search.errors import SearchError

logger = logging.getLogger(__name__)

DATA_DIR_VARIABLE = "MNIST_DATA"

# (stem, magic number, number of items, shape of one item)
_FILES = {
    "train_images": ("train-images-idx3-ubyte", 2051, 60_000, (28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", 2049, 60_000, ()),
    "test_images": ("t10k-images-idx3-ubyte", 2051, 10_000, (28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049, 10_000, ()),
}


# Pixel value k scaled to [0, 1]: float32(k) / float32(255), the very numbers dividing the
# whole array gives. Looked up instead of divided, so that images can stay bytes in memory
# (a quarter of the size) and be scaled inside the compiled training loop.
PIXEL_SCALE = np.arange(256, dtype=np.float32) / np.float32(255.0)


def scale(images: np.ndarray) -> np.ndarray:
    """Byte images as float32 in [0, 1]."""
    return PIXEL_SCALE[images]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Training, validation and test images as bytes ([n, 28, 28], 0..255) with int32 labels.

    ``x_train``, ``x_valid`` and ``x_test`` give the images scaled to [0, 1] as float32,
    made anew on each use (for ``model.fit`` and the like); the compiled loop reads the bytes.
    """

    train_images: np.ndarray
    y_train: np.ndarray
    valid_images: np.ndarray
    y_valid: np.ndarray
    test_images: np.ndarray
    y_test: np.ndarray

    @property
    def x_train(self) -> np.ndarray:
        return scale(self.train_images)

    @property
    def x_valid(self) -> np.ndarray:
        return scale(self.valid_images)

    @property
    def x_test(self) -> np.ndarray:
        return scale(self.test_images)

    def describe(self) -> dict[str, int]:
        return {"train": len(self.train_images), "valid": len(self.valid_images),
                "test": len(self.test_images)}


def read_idx(path: Path, magic: int, count: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) and check its header and size."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise SearchError(f"{path}: cannot be read ({error}); restore the file") from None
    header_size = 4 * (1 + 1 + len(item_shape))
    if len(raw) < header_size:
        raise SearchError(f"{path}: truncated header ({len(raw)} bytes); restore the file")
    header = np.frombuffer(raw[:header_size], dtype=">u4")
    if header[0] != magic:
        raise SearchError(
            f"{path}: magic number {header[0]} is not {magic}; not an MNIST IDX file"
        )
    shape = tuple(int(value) for value in header[1:])
    if shape != (count, *item_shape):
        raise SearchError(f"{path}: shape {shape} is not {(count, *item_shape)}")
    expected = header_size + int(np.prod(shape))
    if len(raw) != expected:
        raise SearchError(
            f"{path}: {len(raw)} bytes where {expected} were expected (truncated or padded); "
            "restore the file"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise SearchError(f"{data_dir}: {stem}[.gz] is missing; put the four MNIST IDX files there")


def load_idx_folder(data_dir: Path) -> tuple[np.ndarray, ...]:
    """Return (x_train, y_train, x_test, y_test) as uint8 arrays from an IDX folder."""
    if not data_dir.is_dir():
        raise SearchError(
            f"{data_dir}: no such folder; pass --data-dir or set {DATA_DIR_VARIABLE}")
    arrays = {}
    for key, (stem, magic, count, item_shape) in _FILES.items():
        path = _find(data_dir, stem)
        arrays[key] = read_idx(path, magic, count, item_shape)
        if key.endswith("labels") and arrays[key].max() > 9:
            raise SearchError(f"{path}: label {arrays[key].max()} is outside 0-9; corrupt file")
    return (arrays["train_images"], arrays["train_labels"],
            arrays["test_images"], arrays["test_labels"])


def load_raw(data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, ...]:
    """MNIST as uint8 arrays, from ``data_dir``, else ``$MNIST_DATA``, else Keras online."""
    folder = data_dir or os.environ.get(DATA_DIR_VARIABLE)
    if folder:
        logger.info("reading MNIST from %s", folder)
        return load_idx_folder(Path(folder))
    import keras  # imported late: reading a folder needs no TensorFlow

    logger.info("no data folder given; asking keras.datasets.mnist (downloads once)")
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # network errors come in many types
        raise SearchError(
            f"keras.datasets.mnist could not load MNIST ({error}); offline, pass --data-dir DIR "
            f"or set {DATA_DIR_VARIABLE} to a folder of the four IDX files"
        ) from None
    return x_train, y_train, x_test, y_test


def split(
    raw: tuple[np.ndarray, ...], validation_size: int, seed: int, train_size: int | None = None
) -> Dataset:
    """Hold out ``validation_size`` training images, chosen by ``seed``.

    ``train_size`` keeps only that many of the remaining training images (smoke runs).
    The test images are never part of training or validation.
    """
    x_train, y_train, x_test, y_test = raw
    if not 0 < validation_size < len(x_train):
        raise SearchError(f"validation_size {validation_size} must lie in 1..{len(x_train) - 1}")
    order = np.random.default_rng(seed).permutation(len(x_train))
    valid, train = order[:validation_size], order[validation_size:]
    if train_size is not None:
        train = train[:train_size]
    return Dataset(
        train_images=x_train[train].reshape(len(train), 28, 28),
        y_train=y_train[train].astype(np.int32),
        valid_images=x_train[valid].reshape(len(valid), 28, 28),
        y_valid=y_train[valid].astype(np.int32),
        test_images=x_test.reshape(len(x_test), 28, 28),
        y_test=y_test.astype(np.int32),
    )
