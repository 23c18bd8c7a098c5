"""The user's arrays: checked in one line per problem, held out as search.data holds out.

Run: ``pytest tests/test_userdata.py`` (NumPy only; milliseconds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search import data as mnist_data
from search import userdata
from search.errors import SearchError

WHERE = "studies/x.toml: 'data'"


def arrays(count: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x_train": rng.normal(size=(count, 3)).astype(np.float32),
            "y_train": rng.integers(0, 2, count).astype(np.int32)}


def test_npz_round_trip(tmp_path: Path) -> None:
    given = {**arrays(), "x_test": np.ones((4, 3), np.float32), "y_test": np.zeros(4)}
    np.savez(tmp_path / "digits.npz", **given)
    loaded = userdata.load_npz(tmp_path / "digits.npz", WHERE)
    for key, value in given.items():
        np.testing.assert_array_equal(getattr(loaded, key), value)
        assert getattr(loaded, key).dtype == value.dtype
    assert loaded.x_valid is None and loaded.y_valid is None
    assert loaded.describe() == {"train": 20, "test": 4}
    assert userdata.fingerprint_arrays(loaded) == userdata.fingerprint_arrays(
        userdata.check_data(given, WHERE))


@pytest.mark.parametrize(("content", "message"), [
    (None, r"digits.npz: no such file$"),
    (b"not a zip file", r"digits.npz is not an .npz file \(a zip of arrays, as numpy.savez "
                        r"writes\)$"),
    ("truncated", r"digits.npz is not a readable .npz file \(BadZipFile: "),
    ("folder", r"digits.npz is not a readable .npz file \(IsADirectoryError: "),
    ("npy", r"digits.npz holds one array, not an .npz archive with x_train, y_train, "),
    ("objects", r"digits.npz is not a readable .npz file \(ValueError: .*allow_pickle"),
    ("extra", r"unknown key 'labels'; allowed: x_train, y_train, x_valid, y_valid, x_test, "
              r"y_test$"),
])
def test_bad_npz_files(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "digits.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        np.savez(path, **arrays())
        path.write_bytes(path.read_bytes()[:200])
    elif content == "folder":
        path.mkdir()
    elif content == "npy":
        with open(path, "wb") as file:
            np.save(file, np.zeros(3))
    elif content == "objects":
        np.savez(path, x_train=np.array([{"a": 1}, None], dtype=object), y_train=np.zeros(2))
    elif content == "extra":
        np.savez(path, **arrays(), labels=np.zeros(20))
    with pytest.raises(SearchError, match=f"^{WHERE}: .*{message}") as caught:
        userdata.load_npz(path, WHERE)
    assert "\n" not in str(caught.value)


class ArrayLike:
    """Like a tf.Tensor or a pandas Series: not an ndarray, but it converts to one."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.values


def test_named_inputs_and_array_likes() -> None:
    given = arrays()
    named = {"x_train": {"image": given["x_train"], "extra": given["x_train"][:, :1]},
             "y_train": ArrayLike(given["y_train"])}
    checked = userdata.check_data(named, WHERE)
    assert set(checked.x_train) == {"image", "extra"}
    assert isinstance(checked.y_train, np.ndarray) and checked.y_train.shape == (20,)
    picked = userdata.take(checked.x_train, np.array([3, 1]))
    np.testing.assert_array_equal(picked["image"], given["x_train"][[3, 1]])
    assert userdata.shapes(checked.x_train) == "{'extra': (20, 1), 'image': (20, 3)}"


def _with(**changes):
    return {**arrays(), **changes}


@pytest.mark.parametrize(("mapping", "message"), [
    ([1, 2], r"got a list, not a mapping with x_train and y_train$"),
    (_with(x_train=None), r"x_train and y_train are required; got y_train$"),
    ({}, r"x_train and y_train are required; got neither$"),
    (_with(x_valid=np.zeros((3, 3))), r"x_valid without y_valid; give both or neither$"),
    (_with(y_test=np.zeros(3)), r"y_test without x_test; give both or neither$"),
    (_with(y_train=np.zeros(19)), r"x_train has 20 samples but y_train has 19$"),
    (_with(x_valid=np.zeros((0, 3)), y_valid=np.zeros(0)), r"x_valid is empty$"),
    (_with(x_train=[[1.0, 2.0]] * 20), r"x_train is a list, not an array$"),
    (_with(y_train=3), r"y_train is a int, not an array$"),
    (_with(y_train=np.float32(3)), r"y_train is a single value, not an array of samples$"),
    (_with(y_train=np.array([None] * 20)), r"y_train holds Python objects \(object\); give "),
    (_with(x_train={"image": np.zeros((20, 3)), "side": np.zeros((18, 1))}),
     r"the arrays of x_train disagree in length: x_train\['image'\] has 20, "
     r"x_train\['side'\] has 18$"),
    (_with(x_train={}), r"x_train is a dict; it needs string keys, one per named input$"),
    (_with(x_train={"image": "pixels"}), r"x_train\['image'\] is a str, not an array$"),
    ({**arrays(), "x_tset": np.zeros(3)}, r"unknown key 'x_tset'; allowed: "),
])
def test_bad_data_is_one_line(mapping, message: str) -> None:
    with pytest.raises(SearchError, match=f"^{WHERE}: {message}") as caught:
        userdata.check_data(mapping, WHERE)
    assert "\n" not in str(caught.value)


def test_hold_out_follows_the_mnist_rule() -> None:
    """The same seeded permutation as search.data.split: the same samples validate."""
    count = 60
    images = np.arange(count * 28 * 28, dtype=np.int64).reshape(count, 28, 28) % 251
    labels = np.arange(count) % 10
    raw = (images.astype(np.uint8), labels.astype(np.uint8), images[:5], labels[:5])
    expected = mnist_data.split(raw, validation_size=12, seed=3, train_size=40)
    data = userdata.check_data({"x_train": raw[0], "y_train": raw[1]}, WHERE)
    held = userdata.hold_out(data, validation_size=12, seed=3, train_size=40)
    np.testing.assert_array_equal(held.x_valid, expected.valid_images)
    np.testing.assert_array_equal(held.y_valid, expected.y_valid)
    np.testing.assert_array_equal(held.x_train, expected.train_images)
    np.testing.assert_array_equal(held.y_train, expected.y_train)
    again = userdata.hold_out(data, validation_size=12, seed=3, train_size=40)
    assert userdata.fingerprint_arrays(again) == userdata.fingerprint_arrays(held)
    other = userdata.hold_out(data, validation_size=12, seed=4, train_size=40)
    assert userdata.fingerprint_arrays(other) != userdata.fingerprint_arrays(held)


def test_hold_out_of_named_inputs_and_its_limits() -> None:
    given = arrays()
    data = userdata.check_data({"x_train": {"a": given["x_train"], "b": given["x_train"] * 2},
                                "y_train": given["y_train"]}, WHERE)
    held = userdata.hold_out(data, validation_size=5, seed=0)
    np.testing.assert_array_equal(held.x_valid["b"], held.x_valid["a"] * 2)
    assert userdata.length(held.x_valid) == 5 and userdata.length(held.x_train) == 15
    with pytest.raises(SearchError, match=r"^validation_size 20 must lie in 1..19 "
                                          r"\(20 training samples\)$"):
        userdata.hold_out(data, validation_size=20, seed=0)
    with pytest.raises(ValueError, match="already has validation"):
        userdata.hold_out(held, validation_size=5, seed=0)


def test_fingerprint_sees_values_dtypes_shapes_and_splits() -> None:
    base = arrays()
    reference = userdata.fingerprint_arrays(userdata.check_data(base, WHERE))
    changed_value = {**base, "x_train": base["x_train"].copy()}
    changed_value["x_train"][7, 1] += 1
    variants = [
        changed_value,
        {**base, "x_train": base["x_train"].astype(np.float64)},
        {**base, "x_train": base["x_train"].reshape(20, 3, 1)},
        {**base, "x_test": base["x_train"], "y_test": base["y_train"]},
        {**base, "x_train": {"x": base["x_train"]}},
    ]
    prints = {userdata.fingerprint_arrays(userdata.check_data(one, WHERE)) for one in variants}
    assert len(prints) == len(variants) and reference not in prints
    # A strided view hashes as its contents do.
    wide = np.repeat(base["x_train"], 2, axis=0)[::2]
    assert userdata.fingerprint_arrays(userdata.check_data(
        {**base, "x_train": wide}, WHERE)) == reference
