"""The example models (studies/convnet.py, studies/regression.py) work with the pieces that
will run them: their study files name builders that take those
keys, and one epoch of each trains on the fit path.

Run: ``pytest tests/test_user_examples.py`` (a few seconds; tiny slices, one thread).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from search import usercode, userdata
from search.training import path_choice, user_model

pytestmark = pytest.mark.slow  # trains real (tiny) models

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

STUDIES = Path(__file__).resolve().parent.parent / "studies"


@pytest.fixture
def study(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], tuple]]:
    """Reads a study file and imports what it names, as a worker would; cleans up after."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    known = set(sys.modules)

    def read(name: str) -> tuple[dict, object]:
        document = tomllib.loads((STUDIES / name).read_text())
        where = f"studies/{name}: 'model.build'"
        builder = usercode.import_function(document["model"]["build"], STUDIES, where)
        fixed = [key for key in document["model"] if key != "build"]
        usercode.check_builder_arguments(builder, document["search_space"], fixed, where)
        return document, builder

    yield read
    for name in set(sys.modules) - known:
        if name in ("convnet", "regression"):
            del sys.modules[name]


def _first_point(document: dict) -> dict:
    point = {key: values[0] for key, values in document["search_space"].items()}
    point.pop("batch_size", None)
    return {**point, **{key: value for key, value in document["model"].items()
                        if key != "build"}}


def test_convnet_trains_on_mnist_shaped_data(study) -> None:
    document, build = study("mnist-convnet.toml")
    rng = np.random.default_rng(0)
    data = userdata.check_data({"x_train": rng.random((48, 28, 28), np.float32),
                                "y_train": rng.integers(0, 10, 48)}, "test")
    data = userdata.hold_out(data, validation_size=16, seed=0)
    keras.utils.set_random_seed(0)
    model = build(**_first_point(document))
    names = user_model.probe(model, data, "test")
    user_model.check_metric(document["objective"]["metric"], names, "test")
    assert path_choice.choose(model).path == "graph"  # convolutions and Dropout
    logs = user_model.train(model, data, batch_size=16, epochs=1, seed=0, path="graph")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} == set(logs[0])


def test_regression_loader_and_builder(study) -> None:
    document, build = study("regression.toml")
    load = usercode.import_function(document["data"]["load"], STUDIES, "data.load")
    given = userdata.check_data(load(train_size=300, test_size=50), "data.load")
    again = userdata.check_data(load(train_size=300, test_size=50), "data.load")
    assert userdata.fingerprint_arrays(given) == userdata.fingerprint_arrays(again)
    assert given.x_train.dtype == np.float32 and given.y_train.shape == (300,)
    data = userdata.hold_out(given, validation_size=100,
                             seed=document["training"].get("seed", 0))
    keras.utils.set_random_seed(0)
    model = build(**_first_point(document))
    names = user_model.probe(model, data, "test")
    assert sorted(names) == ["loss", "mae"]
    user_model.check_metric(document["objective"]["metric"], names, "test")
    assert path_choice.choose(model).path == "xla"  # dense layers only
    logs = user_model.train(model, data, batch_size=32, epochs=2, seed=0, path="xla")
    assert len(logs) == 2 and all(np.isfinite(list(epoch.values())).all() for epoch in logs)
    assert sorted(user_model.test_scores(model, data, batch_size=32, path="xla")) == [
        "test_loss", "test_mae"]
