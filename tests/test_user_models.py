"""Any Keras model and data, named in a study file: every guarantee of the built-in MLP.

A builder and a loader in a temporary folder, named by import strings, trained by the real
CLI (two workers, a kill and a resume), from Python, and on an .npz file; and every bad
input as one line with the stored bytes unchanged.
"""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import search
from search import report, run
from search.errors import SearchError
from tests.helpers import (
    complete_by_params,
    run_to_end,
    running_after_epoch,
    start_run,
    trials,
    wait_for,
)

pytestmark = pytest.mark.slow

MODULE = '''
import keras
import numpy as np

SIZE = {size}


@keras.saving.register_keras_serializable(package="tiny")
class Scale(keras.layers.Layer):  # a custom layer: loading the model needs this module
    def call(self, x):
        return x * 1.0


def load():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(SIZE + 300, 16)).astype("float32")
    y = ((x[:, 0] + x[:, 1] > 0).astype("int32") + (x[:, 2] > 1).astype("int32"))
    return {{"x_train": x[:SIZE], "y_train": y[:SIZE], "x_test": x[SIZE:], "y_test": y[SIZE:]}}


def build(learning_rate, units=16, dropout=0.2):
    if learning_rate > 0.5:
        raise ValueError("learning rate too high for this model")
    model = keras.Sequential([
        keras.Input((16,)), Scale(), keras.layers.Dense(units),
        keras.layers.BatchNormalization(), keras.layers.ReLU(),
        keras.layers.Dropout(dropout), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
'''
STUDY = """\
[model]
build = "tinymodels:build"
[data]
{data}
[search_space]
learning_rate = {rates}
units = {units}
[objective]
metric = "{metric}"
[training]
epochs = {epochs}
batch_size = 16
validation_size = 200
max_attempts = 1
"""


def write_study(folder: Path, name: str, *, size: int = 600, data: str = 'load = '
                '"tinymodels:load"', rates=(0.001, 0.01), units=(8, 16), metric="val_loss",
                epochs: int = 2, module: str = MODULE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tinymodels.py").write_text(module.format(size=size))
    (folder / f"{name}.toml").write_text(STUDY.format(
        data=data, rates=list(rates), units=list(units), metric=metric, epochs=epochs))
    return folder


def test_two_workers_run_each_point_once_and_the_loss_is_minimized(tmp_path, mnist_dir):
    studies = write_study(tmp_path / "studies", "tiny")
    url = f"sqlite:///{tmp_path}/tiny.db"
    result = run_to_end("tiny", url, studies, "--workers", "2", data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr
    complete = complete_by_params("tiny", url)
    assert len(complete) == 4 and len(trials("tiny", url)) == 4
    assert {t.user_attrs["path"] for t in complete.values()} == {"graph"}  # a custom layer
    assert all("test_accuracy" in t.user_attrs["test_scores"] for t in complete.values())
    study = optuna.load_study(study_name="tiny", storage=url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    best = search.verdict_of(study).best
    assert best.mean == min(t.value for t in complete.values())  # the lowest loss wins

    target = tmp_path / "best.keras"
    exported = report.main(["--study", "tiny", "--storage", url, "--studies-dir",
                                   str(studies), "--out", str(tmp_path / "figures"),
                                   "--export-model", str(target)])
    assert exported == 0 and target.is_file()


def test_export_says_when_loading_needs_the_users_module(tmp_path, capsys):
    studies = write_study(tmp_path / "studies", "tiny", rates=(0.01,), units=(8,), epochs=1)
    result = search.run_study("tiny", studies_dir=studies,
                              storage_url=f"sqlite:///{tmp_path}/t.db", workers=1,
                              show_progress=False)
    exported = result.export_best_model(tmp_path / "best.keras")
    assert "loading it needs tinymodels importable" in exported.line()
    assert exported.modules == ["tinymodels"]


def test_a_model_with_batch_norm_and_dropout_killed_after_epoch_1_resumes_exactly(
        tmp_path, mnist_dir):
    # Enough samples that an epoch outlasts the poll that sees it end.
    studies = write_study(tmp_path / "studies", "kill", size=20_000, rates=(0.01,),
                          units=(16,), epochs=3)
    killed, straight = f"sqlite:///{tmp_path}/killed.db", f"sqlite:///{tmp_path}/straight.db"
    process = start_run("kill", killed, studies, data_dir=mnist_dir)
    wait_for(running_after_epoch("kill", killed, 1), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert run_to_end("kill", killed, studies, data_dir=mnist_dir).returncode == 0
    assert run_to_end("kill", straight, studies, data_dir=mnist_dir).returncode == 0
    [resumed] = complete_by_params("kill", killed).values()
    [uninterrupted] = complete_by_params("kill", straight).values()
    assert resumed.user_attrs["resumed_from_epoch"] >= 1  # never from the start
    assert resumed.user_attrs["history"] == uninterrupted.user_attrs["history"]
    assert resumed.value == uninterrupted.value
    assert resumed.user_attrs["test_scores"] == uninterrupted.user_attrs["test_scores"]


def test_an_npz_study_a_failing_point_and_a_changed_file(tmp_path):
    studies = write_study(tmp_path / "studies", "arrays", data='path = "arrays.npz"',
                          rates=(0.001, 0.9), units=(8,), epochs=1, metric="val_accuracy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 16)).astype("float32"), rng.integers(0, 3, 300)
    np.savez(studies / "arrays.npz", x_train=x, y_train=y)
    url = f"sqlite:///{tmp_path}/arrays.db"
    result = search.run_study("arrays", studies_dir=studies, storage_url=url, workers=1,
                              show_progress=False)
    assert result.complete == 1 and result.given_up == 1
    failed = [t for t in result.trials if t.state == TrialState.FAIL]
    assert failed[0].user_attrs["failure"] == \
        "error: ValueError: learning rate too high for this model"
    assert result.trials[0].user_attrs["data_sizes"] == {"train": 100, "valid": 200}
    np.savez(studies / "arrays.npz", x_train=x[::-1], y_train=y)  # the same shapes, other data
    with pytest.raises(SearchError, match="was started with other data"):
        search.run_study("arrays", studies_dir=studies, storage_url=url, workers=1,
                         retry_failed=True, show_progress=False)


def test_a_builder_and_arrays_from_python(tmp_path):
    import keras

    def build(learning_rate: float) -> keras.Model:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(learning_rate), "mse")
        return model

    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.normal(size=(120, 4)), "y_train": rng.normal(size=120)}
    definition = search.StudyDefinition(name="cell", search_space={"learning_rate": [0.01]},
                                        epochs=1, validation_size=20, metric="val_loss",
                                        direction="minimize")
    with pytest.raises(SearchError, match="cannot reach worker processes"):
        search.run_study(definition, build=build, data=arrays, workers=2,
                         storage_url=f"sqlite:///{tmp_path}/cell.db")
    result = search.run_study(definition, build=build, data=arrays, workers=1,
                              storage_url=f"sqlite:///{tmp_path}/cell.db", show_progress=False)
    assert result.complete == 1 and result.trials[0].user_attrs["path"] == "xla"


BUILD = 'build = "tinymodels:build"'
# (id, what to change: (old, new) in the module or the study file, what the line must say)
BAD_INPUTS = [
    ("module missing", ("study", BUILD, 'build = "nosuch:build"'), "no module 'nosuch'"),
    ("function missing", ("study", BUILD, 'build = "tinymodels:biuld"'), "has no 'biuld'"),
    ("import error inside", ("module", "import numpy as np", "import numpy as np\n"
                             "import not_installed_anywhere"), "importing 'tinymodels' failed"),
    ("grid key not taken", ("study", "units = [8]", "units = [8]\nfilters = [1]"),
     "takes no argument 'filters'"),
    ("required argument", ("module", "dropout=0.2):", "dropout=0.2, *, depth):"),
     "needs a value for 'depth'"),
    ("builder raises", ("module", "    if learning_rate > 0.5:", "    if learning_rate > 0:"),
     "failed: ValueError: learning rate too high"),
    ("not a model", ("module", "    return model\n", "    return 5\n"), "returned int"),
    ("not compiled", ("module", "    model.compile(", "    (lambda *a, **k: None)("),
     "not compiled"),
    ("lengths disagree", ("module", '"y_train": y[:SIZE]', '"y_train": y[:SIZE - 1]'),
     "but y_train has"),
    ("empty split", ("module", '"x_test": x[SIZE:]', '"x_test": x[:0]'), "x_test is empty"),
    ("input shape", ("module", "keras.Input((16,))", "keras.Input((5,))"), "does not take"),
    ("metric not reported", ("study", 'metric = "val_loss"', 'metric = "val_auc"\n'
                             'direction = "maximize"'), "reports no 'val_auc'"),
]


@pytest.mark.parametrize("change", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_a_bad_builder_or_data_is_one_line_and_stores_nothing(tmp_path, capsys, change):
    (where, old, new), expected = change
    url = f"sqlite:///{tmp_path}/kept.db"
    kept = write_study(tmp_path / "kept", "kept", rates=(0.01,), units=(8,), epochs=1)
    search.run_study("kept", studies_dir=kept, storage_url=url, workers=1,
                     show_progress=False)
    before = hashlib.sha256((tmp_path / "kept.db").read_bytes()).hexdigest()
    module = MODULE.replace(old, new) if where == "module" else MODULE
    studies = write_study(tmp_path / "bad", "bad", units=(8,), module=module)
    if where == "study":
        text = (studies / "bad.toml").read_text()
        assert old in text
        (studies / "bad.toml").write_text(text.replace(old, new))
    else:
        assert old in MODULE
    capsys.readouterr()
    code = run.main(["--study", "bad", "--studies-dir", str(studies), "--storage", url,
                     "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert expected in err and str(studies / "bad.toml") in err
    assert hashlib.sha256((tmp_path / "kept.db").read_bytes()).hexdigest() == before
    assert optuna.get_all_study_names(url) == ["kept"]
