"""The user's data as arrays: from a loader's mapping or an ``.npz`` file, checked once.

A split's inputs are one array or a dict of arrays (a model with named inputs), and so are
its targets. Every problem is one ``SearchError`` line naming ``where`` (the file and key).
Without validation arrays, ``hold_out`` takes them out of the training set with the rule of
``search.data.split``. Cheap to import: NumPy only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import SearchError

SPLITS = ("train", "valid", "test")
KEYS = tuple(f"{kind}_{split}" for split in SPLITS for kind in ("x", "y"))

Arrays = np.ndarray | dict[str, np.ndarray]
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


@dataclasses.dataclass(frozen=True)
class UserData:
    """Inputs and targets of each split; validation and test may be absent (None)."""

    x_train: Arrays
    y_train: Arrays
    x_valid: Arrays | None = None
    y_valid: Arrays | None = None
    x_test: Arrays | None = None
    y_test: Arrays | None = None

    def describe(self) -> dict[str, int]:
        """Samples per split, as ``search.data.Dataset.describe`` gives them."""
        return {split: length(getattr(self, f"x_{split}")) for split in SPLITS
                if getattr(self, f"x_{split}") is not None}


def _leaves(value: Arrays) -> list[tuple[str, np.ndarray]]:
    """(suffix, array) pairs: ``""`` for a lone array, ``"['name']"`` for a dict's."""
    if isinstance(value, dict):
        return [(f"[{name!r}]", value[name]) for name in sorted(value)]
    return [("", value)]


def length(value: Arrays) -> int:
    """Number of samples of an array or of a dict of arrays (its first one)."""
    return len(_leaves(value)[0][1])


def shapes(value: Arrays | None) -> str:
    """The shapes, for messages: ``(600, 28, 28)`` or ``{'image': (600, 28, 28), ...}``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name!r}: {value[name].shape}" for name in sorted(value)) + "}"
    return "None" if value is None else str(value.shape)


def take(value: Arrays, indices: np.ndarray | slice) -> Arrays:
    """The samples at ``indices`` of an array or of each array of a dict."""
    if isinstance(value, dict):
        return {name: array[indices] for name, array in value.items()}
    return value[indices]


def _as_array(value: Any, name: str, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        if not hasattr(value, "__array__"):  # a list would silently become an object array
            raise SearchError(f"{where}: {name} is a {type(value).__name__}, not an array")
        value = np.asarray(value)
    if value.ndim == 0:
        raise SearchError(f"{where}: {name} is a single value, not an array of samples")
    if value.dtype.hasobject:
        raise SearchError(f"{where}: {name} holds Python objects ({value.dtype}); give "
                          "numbers")
    return value


def _checked(value: Any, key: str, where: str) -> Arrays:
    """An array, or a non-empty dict of arrays, with one length; that length not 0."""
    if isinstance(value, Mapping):
        if not value or not all(isinstance(name, str) for name in value):
            raise SearchError(f"{where}: {key} is a dict; it needs string keys, one per "
                              "named input")
        checked: Arrays = {name: _as_array(array, f"{key}[{name!r}]", where)
                           for name, array in value.items()}
    else:
        checked = _as_array(value, key, where)
    lengths = {f"{key}{suffix}": len(array) for suffix, array in _leaves(checked)}
    if len(set(lengths.values())) > 1:
        raise SearchError(f"{where}: the arrays of {key} disagree in length: "
                          + ", ".join(f"{name} has {size}" for name, size in lengths.items()))
    if length(checked) == 0:
        raise SearchError(f"{where}: {key} is empty")
    return checked


def check_data(mapping: Any, where: str) -> UserData:
    """The arrays of ``mapping`` (a loader's result, or an ``.npz`` file's), checked."""
    if not isinstance(mapping, Mapping):
        raise SearchError(f"{where}: got a {type(mapping).__name__}, not a mapping with "
                          "x_train and y_train")
    unknown = sorted(str(key) for key in mapping if key not in KEYS)
    if unknown:
        raise SearchError(f"{where}: unknown key {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(KEYS)}")
    for split in SPLITS:
        present = [key for key in (f"x_{split}", f"y_{split}") if mapping.get(key) is not None]
        if split == "train" and len(present) < 2:
            raise SearchError(f"{where}: x_train and y_train are required; got "
                              f"{', '.join(present) or 'neither'}")
        if len(present) == 1:
            other = ("y_" if present[0].startswith("x_") else "x_") + split
            raise SearchError(f"{where}: {present[0]} without {other}; give both or neither")
    arrays = {key: _checked(mapping[key], key, where) for key in KEYS
              if mapping.get(key) is not None}
    for split in SPLITS:
        if f"x_{split}" in arrays and length(arrays[f"x_{split}"]) != length(
                arrays[f"y_{split}"]):
            raise SearchError(f"{where}: x_{split} has {length(arrays[f'x_{split}'])} samples "
                              f"but y_{split} has {length(arrays[f'y_{split}'])}")
    return UserData(**arrays)


def _read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as file:
            magic = file.read(len(_NPY_MAGIC))
        if magic.startswith(_NPY_MAGIC):
            raise SearchError(f"{where}: {path} holds one array, not an .npz archive "
                              f"with {', '.join(KEYS)}")
        # Checked first: NumPy reads anything else as a pickle and says so, which misleads.
        if not magic.startswith(_ZIP_MAGIC):
            raise SearchError(f"{where}: {path} is not an .npz file (a zip of arrays, as "
                              "numpy.savez writes)")
        with np.load(path, allow_pickle=False) as loaded:
            return {key: loaded[key] for key in loaded.files}
    except FileNotFoundError:
        raise SearchError(f"{where}: {path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise SearchError(f"{where}: {path} is not a readable .npz file "
                          f"({type(error).__name__}: {error})") from None


def load_npz(path: Path, where: str) -> UserData:
    """The arrays of an ``.npz`` file (keys: ``KEYS``), checked; pickles are refused."""
    return check_data(_read_npz(Path(path), where), where)


def hold_out(data: UserData, validation_size: int, seed: int,
             train_size: int | None = None) -> UserData:
    """Validation samples taken out of the training set by ``seed``, as
    ``search.data.split`` does: ``default_rng(seed).permutation(n)``, the first
    ``validation_size`` validate. ``train_size`` keeps that many of the rest (smoke runs)."""
    if data.x_valid is not None:
        raise ValueError("the data already has validation arrays")
    count = length(data.x_train)
    if not 0 < validation_size < count:
        raise SearchError(f"validation_size {validation_size} must lie in 1..{count - 1} "
                          f"({count} training samples)")
    order = np.random.default_rng(seed).permutation(count)
    valid, train = order[:validation_size], order[validation_size:]
    if train_size is not None:
        train = train[:train_size]
    return dataclasses.replace(
        data, x_train=take(data.x_train, train), y_train=take(data.y_train, train),
        x_valid=take(data.x_train, valid), y_valid=take(data.y_train, valid))


def fingerprint_arrays(data: UserData) -> str:
    """sha256 over every split's names, dtypes, shapes and bytes (absent splits count)."""
    digest = hashlib.sha256()
    for key in KEYS:
        value = getattr(data, key)
        digest.update(f"{key}:{value is None};".encode())
        for suffix, array in [] if value is None else _leaves(value):
            digest.update(f"{suffix}:{array.dtype.str}:{array.shape};".encode())
            # Bytes, not values: a view as uint8 hashes any fixed-size dtype without copying
            # a contiguous array.
            digest.update(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
    return digest.hexdigest()
