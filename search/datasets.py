"""The data a study trains on, loaded once per process: MNIST for the built-in MLP (as
bytes, for its compiled path), else the user's arrays.

A [model] study without [data] trains on MNIST too, scaled to float32 in [0, 1] as
``keras.datasets.mnist`` tutorials use it; with ``[data] load`` its loader is called, with
``[data] path`` its ``.npz`` file (beside the study file) is read. Without validation arrays,
``validation_size`` samples are held out of the training set by the study's seed, as for
MNIST; ``train_size`` keeps that many of the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search import data, usercode, userdata
from search.definition import StudyDefinition
from search.errors import SearchError
from search.userdata import UserData


def _mnist(definition: StudyDefinition, data_dir: str | None) -> data.Dataset:
    return data.split(data.load_raw(data_dir), definition.validation_size, definition.seed,
                      definition.train_size)


def _user_arrays(definition: StudyDefinition, data_dir: str | None,
                 given: Mapping[str, Any] | None) -> UserData:
    if given is not None:
        return userdata.check_data(given, "the data given to run_study")
    if definition.data is None:  # MNIST, held out as for the MLP
        raw = data.load_raw(data_dir)
        _check_validation_size(definition, len(raw[0]))
        # Split as bytes, then scaled: the same arrays as scaling all 70,000 images and
        # holding out after (the same permutation), at a fraction of the time.
        split = data.split(raw, definition.validation_size, definition.seed,
                           definition.train_size)
        return UserData(x_train=data.scale(split.train_images), y_train=split.y_train,
                        x_valid=data.scale(split.valid_images), y_valid=split.y_valid,
                        x_test=data.scale(split.test_images), y_test=split.y_test)
    if "path" in definition.data:
        where = definition.where("data.path")
        return userdata.load_npz(Path(definition.folder or ".") / definition.data["path"],
                                 where)
    where = definition.where("data.load")
    loader = usercode.import_function(definition.data["load"], definition.folder, where)
    try:
        loaded = loader()
    except Exception as error:  # whatever the user's loader raises
        raise SearchError(f"{where}: calling {definition.data['load']} failed: "
                          f"{usercode.describe_error(error)}") from None
    return userdata.check_data(loaded, where)


def _check_validation_size(definition: StudyDefinition, count: int) -> None:
    if not 0 < definition.validation_size < count:
        raise SearchError(f"{definition.where('training.validation_size')}: "
                          f"{definition.validation_size} must lie in 1..{count - 1}, to "
                          f"hold out of the data's {count} training samples (it gives no "
                          "x_valid)")


def load(definition: StudyDefinition, data_dir: str | None = None,
         given: Mapping[str, Any] | None = None) -> data.Dataset | UserData:
    """The study's data, split into training and validation (and test, where given)."""
    if definition.model is None:
        return _mnist(definition, data_dir)
    arrays = _user_arrays(definition, data_dir, given)
    if arrays.x_valid is None:
        _check_validation_size(definition, userdata.length(arrays.x_train))
        return userdata.hold_out(arrays, definition.validation_size, definition.seed,
                                 definition.train_size)
    if definition.train_size is not None:
        kept = slice(0, definition.train_size)
        return dataclasses.replace(arrays, x_train=userdata.take(arrays.x_train, kept),
                                   y_train=userdata.take(arrays.y_train, kept))
    return arrays


def fingerprint(dataset: data.Dataset | UserData) -> str | None:
    """What a study records of its data: None for MNIST's, whose files are checked."""
    return userdata.fingerprint_arrays(dataset) if isinstance(dataset, UserData) else None
