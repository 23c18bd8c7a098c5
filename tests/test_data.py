"""The MNIST loader: the real files, uncompressed copies, the split, and damaged files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from search import data
from search.errors import SearchError

# From ../shared/mnist/README.md.
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def test_real_folder_has_mnist_shapes_and_label_counts(mnist_raw) -> None:
    x_train, y_train, x_test, y_test = mnist_raw
    assert x_train.shape == (60_000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60_000,) and x_test.shape == (10_000, 28, 28)
    assert y_test.shape == (10_000,)
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_LABEL_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_LABEL_COUNTS
    assert round(float(x_train.mean()) / 255, 4) == 0.1307


def test_uncompressed_files_load_the_same(tmp_path: Path, mnist_dir: Path, mnist_raw) -> None:
    for stem in STEMS:
        (tmp_path / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    for loaded, expected in zip(data.load_raw(tmp_path), mnist_raw, strict=True):
        np.testing.assert_array_equal(loaded, expected)


def test_environment_variable_names_the_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(tmp_path / "elsewhere"))
    with pytest.raises(SearchError, match="elsewhere: no such folder"):
        data.load_raw()


def _numbered_images(count: int) -> tuple[np.ndarray, ...]:
    """Images whose first two pixels spell their index, so a split can be traced back."""
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(count) % 256, np.arange(count) // 256
    labels = (np.arange(count) % 10).astype(np.uint8)
    return images, labels, images[:50].copy(), labels[:50].copy()


def _indices(images: np.ndarray) -> np.ndarray:
    pixels = np.rint(images[:, 0, :2] * 255).astype(int)
    return pixels[:, 0] + 256 * pixels[:, 1]


def test_split_is_seeded_disjoint_and_keeps_labels_with_images() -> None:
    raw = _numbered_images(1000)
    first = data.split(raw, validation_size=100, seed=3)
    again = data.split(raw, validation_size=100, seed=3)
    other = data.split(raw, validation_size=100, seed=4)
    train, valid = _indices(first.x_train), _indices(first.x_valid)
    assert first.describe() == {"train": 900, "valid": 100, "test": 50}
    assert set(train).isdisjoint(valid) and len(set(train) | set(valid)) == 1000
    np.testing.assert_array_equal(first.y_train, train % 10)
    np.testing.assert_array_equal(first.y_valid, valid % 10)
    np.testing.assert_array_equal(_indices(again.x_valid), valid)
    assert set(_indices(other.x_valid)) != set(valid)
    smaller = data.split(raw, validation_size=100, seed=3, train_size=200)
    assert len(smaller.x_train) == 200 and set(_indices(smaller.x_train)) <= set(train)
    np.testing.assert_array_equal(_indices(smaller.x_valid), valid)  # same held-out set


def test_split_scales_to_unit_range_and_leaves_test_images_alone(mnist_raw) -> None:
    split = data.split(mnist_raw, validation_size=6000, seed=0, train_size=1000)
    for images in (split.x_train, split.x_valid, split.x_test):
        assert images.dtype == np.float32 and images.shape[1:] == (28, 28)
        assert images.min() == 0.0 and images.max() == 1.0
    assert (len(split.x_train), len(split.x_valid)) == (1000, 6000)
    for labels in (split.y_train, split.y_valid, split.y_test):
        assert labels.dtype == np.int32 and set(np.unique(labels)) <= set(range(10))
    np.testing.assert_array_equal(split.x_test * 255, mnist_raw[2].astype(np.float32))
    np.testing.assert_array_equal(split.y_test, mnist_raw[3])


@pytest.mark.parametrize("size", [0, 60_000])
def test_split_rejects_a_validation_size_out_of_range(mnist_raw, size: int) -> None:
    with pytest.raises(SearchError, match="validation_size"):
        data.split(mnist_raw, validation_size=size, seed=0)


@pytest.fixture
def folder(tmp_path: Path, mnist_dir: Path) -> Path:
    """A copy of the MNIST folder (links to the real files) for one file to be damaged."""
    copy = tmp_path / "mnist"
    copy.mkdir()
    for stem in STEMS:
        (copy / f"{stem}.gz").symlink_to(mnist_dir / f"{stem}.gz")
    return copy


def _labels(mnist_dir: Path) -> bytes:
    return gzip.decompress((mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes())


def _damage(mnist_dir: Path, how: str) -> tuple[str, bytes]:
    """(file name, content) of a damaged train-labels file."""
    packed = (mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes()
    labels = _labels(mnist_dir)
    if how == "truncated gzip":
        return "train-labels-idx1-ubyte.gz", packed[: len(packed) // 2]
    if how == "corrupt gzip":
        middle = len(packed) // 2
        flipped = bytes(byte ^ 0xFF for byte in packed[middle:middle + 64])
        return "train-labels-idx1-ubyte.gz", packed[:middle] + flipped + packed[middle + 64:]
    if how == "gzip checksum":
        return "train-labels-idx1-ubyte.gz", packed[:-8] + bytes(8)
    if how == "truncated file":
        return "train-labels-idx1-ubyte", labels[:-100]
    if how == "truncated header":
        return "train-labels-idx1-ubyte", labels[:5]
    if how == "empty file":
        return "train-labels-idx1-ubyte", b""
    if how == "wrong magic":
        return "train-labels-idx1-ubyte", (2051).to_bytes(4, "big") + labels[4:]
    if how == "wrong count":
        return "train-labels-idx1-ubyte", labels[:4] + (59_999).to_bytes(4, "big") + labels[8:]
    if how == "label out of range":
        return "train-labels-idx1-ubyte", labels[:-1] + bytes([10])
    raise ValueError(how)


DAMAGES = {
    "truncated gzip": "end-of-stream",
    "corrupt gzip": "cannot be read",
    "gzip checksum": "CRC",
    "truncated file": "truncated",
    "truncated header": "truncated header",
    "empty file": "truncated header",
    "wrong magic": "magic number 2051 is not 2049",
    "wrong count": "shape (59999,) is not (60000,)",
    "label out of range": "label 10 is outside 0-9",
}


@pytest.mark.parametrize(("how", "problem"), DAMAGES.items(), ids=list(DAMAGES))
def test_damaged_file_is_one_line_naming_file_and_problem(
        folder: Path, mnist_dir: Path, how: str, problem: str) -> None:
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    name, content = _damage(mnist_dir, how)
    (folder / name).write_bytes(content)
    with pytest.raises(SearchError) as caught:
        data.load_raw(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder / name) in message and problem in message


def test_missing_file_is_named(folder: Path) -> None:
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SearchError, match=r"t10k-labels-idx1-ubyte\[\.gz\] is missing") as caught:
        data.load_raw(folder)
    assert str(folder) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="no such folder") as caught:
        data.load_raw(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value)


def test_a_file_where_the_folder_should_be_is_named(tmp_path: Path) -> None:
    (tmp_path / "mnist.zip").write_bytes(b"PK")
    with pytest.raises(SearchError, match="no such folder"):
        data.load_raw(tmp_path / "mnist.zip")


def test_images_stay_bytes_and_scale_exactly_as_dividing_by_255(mnist_raw):
    split = data.split(mnist_raw, validation_size=200, seed=0, train_size=300)
    assert split.train_images.dtype == np.uint8 and split.train_images.shape == (300, 28, 28)
    divided = split.train_images.astype(np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(split.x_train, divided)  # bit for bit, not approximately


def test_a_model_study_on_mnist_gets_the_arrays_and_fingerprint_it_always_got(
        mnist_dir: Path, mnist_raw) -> None:
    """Split as bytes, then scaled: exactly the arrays (and so the stored fingerprint) of
    scaling every image and holding out after, as before."""
    from search import datasets, definition, userdata

    study = definition.parse('[model]\nbuild = "m:build"\n[search_space]\nunits = [1]\n'
                             '[training]\ntrain_size = 3000\nvalidation_size = 1000\n',
                             "m", "m.toml")
    x_train, y_train, x_test, y_test = mnist_raw
    before = userdata.hold_out(userdata.UserData(
        x_train=data.scale(x_train), y_train=y_train.astype("int32"),
        x_test=data.scale(x_test), y_test=y_test.astype("int32")), 1000, study.seed, 3000)
    loaded = datasets.load(study, str(mnist_dir))
    for key in userdata.KEYS:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(before, key))
        assert getattr(loaded, key).dtype == getattr(before, key).dtype
    assert datasets.fingerprint(loaded) == userdata.fingerprint_arrays(before)
