"""The MLP's knobs: hidden_units, dropout, activation and optimizer, searched or fixed.

Fast tier: definitions (good and bad values, one line naming the key; defaults; the budget
rule), the model each knob builds, and the grid through the real worker loop in a
temporary SQLite file. Slow tier (``slow``): each knob trains correctly on the compiled
fast path.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import definition, knobs
from search.errors import SearchError
from search.results import table
from search.study import lifecycle, points, units
from search.study.storage import open_storage
from search.training.checkpoints import CheckpointStore
from search.training.compiled import CompiledTraining
from search.training.copies import Copy, architecture_of, epoch_order
from search.training.dropout import dropout_seeds, seed_states
from search.training.model import build_model
from search.worker import loop
from search.worker.paths import CompiledPath

PAIR = "[search_space]\nlearning_rate = [0.001, 0.01]\nbatch_size = [32]\n"
SEED_BUDGET = {"search_space": {"learning_rate": [0.0001, 0.001, 0.01],
                                "batch_size": [32, 64, 128]},
               "epochs": 10, "hidden_units": [128, 64], "validation_size": 6000,
               "train_size": None, "seed": 0}


def _parse(text: str) -> definition.StudyDefinition:
    return definition.parse(text, "knobs", "knobs.toml")


def _refused(text: str) -> str:
    with pytest.raises(SearchError) as caught:
        _parse(text)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("knobs.toml: ")
    return message


# --- definitions ---------------------------------------------------------------------------

SEARCHED = [  # (TOML line in [search_space], the values Optuna gets)
    ("hidden_units = [[128, 64], [256, 128], [512]]", ["128-64", "256-128", "512"]),
    ("dropout = [0, 0.2, 0.5]", [0.0, 0.2, 0.5]),
    ('activation = ["relu", "gelu", "tanh", "swish", "leaky_relu"]',
     ["relu", "gelu", "tanh", "swish", "leaky_relu"]),
    ('optimizer = ["adam", "sgd", "rmsprop"]', ["adam", "sgd", "rmsprop"]),
]


@pytest.mark.parametrize(("line", "values"), SEARCHED, ids=[s[0].split()[0] for s in SEARCHED])
def test_a_searched_knob_reaches_the_grid_as_categorical_values(line: str, values: list) -> None:
    loaded = _parse(PAIR + line + "\n")
    name = line.split()[0]
    assert loaded.search_space[name] == values
    assert len(loaded.grid) == 2 * len(values)
    optuna.distributions.CategoricalDistribution(values)  # Optuna accepts every choice


FIXED = [  # (TOML line in [training], the attribute)
    ("hidden_units = [32]", [32]),
    ("dropout = 0.2", 0.2),
    ('activation = "gelu"', "gelu"),
    ('optimizer = "sgd"', "sgd"),
]


@pytest.mark.parametrize(("line", "value"), FIXED, ids=[f[0].split()[0] for f in FIXED])
def test_a_fixed_knob_is_read_from_training(line: str, value) -> None:
    loaded = _parse(PAIR + "[training]\n" + line + "\n")
    assert getattr(loaded, line.split()[0]) == value


BAD = [  # (id, TOML text, the key the message must name)
    ("units not a list of lists", PAIR + "hidden_units = [128, 64]\n",
     "search_space.hidden_units"),
    ("units empty layer list", PAIR + "hidden_units = [[128], []]\n",
     "search_space.hidden_units"),
    ("units zero", PAIR + "hidden_units = [[128, 0]]\n", "search_space.hidden_units"),
    ("units a float", PAIR + "hidden_units = [[12.5]]\n", "search_space.hidden_units"),
    ("units a string", PAIR + 'hidden_units = ["128-64"]\n', "search_space.hidden_units"),
    ("units repeated", PAIR + "hidden_units = [[64], [64]]\n", "search_space.hidden_units"),
    ("dropout of 1", PAIR + "dropout = [0.0, 1.0]\n", "search_space.dropout"),
    ("dropout negative", PAIR + "dropout = [-0.1]\n", "search_space.dropout"),
    ("dropout a bool", PAIR + "dropout = [false]\n", "search_space.dropout"),
    ("dropout repeated", PAIR + "dropout = [0, 0.0]\n", "search_space.dropout"),
    ("activation unknown", PAIR + 'activation = ["relu", "rleu"]\n', "search_space.activation"),
    ("activation softmax", PAIR + 'activation = ["softmax"]\n', "search_space.activation"),
    ("activation a number", PAIR + "activation = [1]\n", "search_space.activation"),
    ("optimizer unknown", PAIR + 'optimizer = ["adamw"]\n', "search_space.optimizer"),
    ("optimizer capitalised", PAIR + 'optimizer = ["Adam"]\n', "search_space.optimizer"),
    ("unknown knob", PAIR + "momentum = [0.9]\n", "search_space.momentum"),
    ("fixed units nested", PAIR + "[training]\nhidden_units = [[128]]\n",
     "training.hidden_units"),
    ("fixed dropout of 1", PAIR + "[training]\ndropout = 1\n", "training.dropout"),
    ("fixed dropout a string", PAIR + '[training]\ndropout = "0.1"\n', "training.dropout"),
    ("fixed activation unknown", PAIR + '[training]\nactivation = "relu6x"\n',
     "training.activation"),
    ("fixed optimizer a list", PAIR + '[training]\noptimizer = ["sgd"]\n',
     "training.optimizer"),
    ("both searched and fixed", PAIR + 'activation = ["relu"]\n[training]\nactivation = "relu"\n',
     "training.activation"),
]


@pytest.mark.parametrize(("text", "key"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_a_bad_knob_is_one_line_naming_the_key(text: str, key: str) -> None:
    assert f"'{key}'" in _refused(text)


def test_messages_say_what_a_value_must_be() -> None:
    assert "values must lie in [0, 1)" in _refused(PAIR + "dropout = [1.0]\n")
    assert "adam, sgd, rmsprop" in _refused(PAIR + 'optimizer = ["adamw"]\n')
    assert "'rleu'" in _refused(PAIR + 'activation = ["rleu"]\n')


def test_every_knob_defaults_to_the_seeds_setup() -> None:
    loaded = _parse(PAIR)
    assert (loaded.epochs, loaded.hidden_units, loaded.validation_size, loaded.seed) == (
        10, [128, 64], 6000, 0)
    assert (loaded.activation, loaded.dropout, loaded.optimizer) == ("relu", 0.0, "adam")
    assert (loaded.max_attempts, loaded.repeats, loaded.train_size) == (3, 1, None)
    assert loaded.model_arguments(loaded.grid[0]) == {
        "hidden_units": [128, 64], "activation": "relu", "dropout": 0.0, "optimizer": "adam",
        "learning_rate": 0.001}


def test_hidden_units_travel_as_labels_and_build_as_lists() -> None:
    loaded = _parse(PAIR + "hidden_units = [[128, 64], [512]]\n[training]\ndropout = 0.2\n")
    assert [point["hidden_units"] for point in loaded.grid] == ["128-64", "512"] * 2
    arguments = loaded.model_arguments(loaded.grid[1])
    assert arguments["hidden_units"] == [512] and arguments["dropout"] == 0.2
    assert knobs.layer_sizes(knobs.units_label([256, 128, 10])) == [256, 128, 10]


# --- the budget ----------------------------------------------------------------------------

def test_the_mnist_budget_is_what_studies_stored_before_the_knobs() -> None:
    assert definition.load("mnist").budget() == SEED_BUDGET


def test_model_keys_enter_the_budget_only_where_they_leave_the_seeds_model() -> None:
    default = _parse(PAIR).budget()
    spelled_out = _parse(PAIR + '[training]\nactivation = "relu"\ndropout = 0.0\n'
                         'optimizer = "adam"\nhidden_units = [128, 64]\n').budget()
    assert spelled_out == default and not {"activation", "dropout", "optimizer"} & set(default)
    changed = _parse(PAIR + '[training]\nactivation = "gelu"\ndropout = 0.2\n'
                     'optimizer = "sgd"\n').budget()
    assert (changed["activation"], changed["dropout"], changed["optimizer"]) == (
        "gelu", 0.2, "sgd")
    searched = _parse(PAIR + "hidden_units = [[64], [32]]\n").budget()
    assert "hidden_units" not in searched  # the search space holds it
    assert searched["search_space"]["hidden_units"] == ["64", "32"]


@pytest.mark.parametrize(("first", "then", "named"), [
    ("", "dropout = 0.2", "dropout"),
    ('activation = "gelu"', "", "activation"),
    ('optimizer = "sgd"', 'optimizer = "rmsprop"', "optimizer"),
    ("", "hidden_units = [256]", "hidden_units"),
], ids=["dropout added", "activation back to relu", "optimizer changed", "units changed"])
def test_a_changed_model_is_refused_naming_the_key(tmp_path: Path, first: str, then: str,
                                                   named: str) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/knobs.db")
    try:
        lifecycle.open_study(storage, _parse(PAIR + "[training]\n" + first + "\n"))
        with pytest.raises(SearchError, match=f"started with another {named};") as caught:
            lifecycle.open_study(storage, _parse(PAIR + "[training]\n" + then + "\n"))
        assert "\n" not in str(caught.value)
        lifecycle.open_study(storage, _parse(PAIR + "[training]\n" + first + "\n"))
    finally:
        storage.rdb.engine.dispose()


# --- the grid through the worker loop --------------------------------------------------------

class _Scores:
    """An objective that trains nothing: it checks what the objective would build."""

    def __init__(self, loaded: definition.StudyDefinition) -> None:
        self.definition = loaded
        self.built: list[dict] = []

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float:
        params = {name: trial.suggest_categorical(name, values)
                  for name, values in self.definition.search_space.items()}
        self.built.append(self.definition.model_arguments(params))
        return len(self.built) / 100

    def forget(self, unit: points.Unit) -> None:
        pass


def test_a_grid_over_every_knob_runs_each_point_once_and_reads_back(tmp_path: Path) -> None:
    loaded = _parse(PAIR + "hidden_units = [[128, 64], [512]]\ndropout = [0.0, 0.3]\n"
                    'activation = ["relu", "gelu"]\noptimizer = ["adam", "sgd"]\n')
    storage = open_storage(f"sqlite:///{tmp_path}/knobs.db")
    try:
        study = lifecycle.open_study(storage, loaded)
        objective = _Scores(loaded)
        loop.work(storage, study, objective)
        trials = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
        assert len(trials) == len(loaded.grid) == 32
        for trial in trials:
            assert trial.params == units.stored_grid(study)[trial.system_attrs[points.UNIT][0]]
        assert {tuple(built["hidden_units"]) for built in objective.built} == {(128, 64), (512,)}
        shown = table.format_table(table.point_rows(study)[0])
        assert "128-64" in shown and "[128, 64]" not in shown
        assert lifecycle.open_study(storage, loaded)  # reopens: same budget, same grid
    finally:
        storage.rdb.engine.dispose()


# --- the model -----------------------------------------------------------------------------

def _layers(model: keras.Model) -> list[tuple]:
    def describe(layer: keras.layers.Layer) -> tuple:
        config = layer.get_config()
        return (type(layer).__name__, config.get("units"), config.get("activation"),
                config.get("rate"))
    return [describe(layer) for layer in model.layers]


def test_the_defaults_build_exactly_the_seeds_mlp() -> None:
    model = build_model([128, 64], 0.001)
    assert _layers(model) == [("Flatten", None, None, None), ("Dense", 128, "relu", None),
                              ("Dense", 64, "relu", None), ("Dense", 10, "softmax", None)]
    assert model.count_params() == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert not seed_states(model)


def test_each_knob_reaches_the_model() -> None:
    model = build_model([32, 16], 0.01, activation="gelu", dropout=0.25, optimizer="rmsprop")
    assert _layers(model) == [("Flatten", None, None, None), ("Dense", 32, "gelu", None),
                              ("Dropout", None, None, 0.25), ("Dense", 16, "gelu", None),
                              ("Dropout", None, None, 0.25), ("Dense", 10, "softmax", None)]
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert len(seed_states(model)) == 2  # one generator per Dropout layer
    assert isinstance(build_model([8], 0.1, optimizer="sgd").optimizer, keras.optimizers.SGD)


def test_build_model_refuses_bad_values() -> None:
    for arguments in ({"dropout": 1.0}, {"optimizer": "adamw"}, {"activation": "rleu"}):
        with pytest.raises(ValueError):
            build_model([8], 0.001, **arguments)


def test_the_definitions_names_are_the_ones_keras_and_the_model_know() -> None:
    expected = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
                "rmsprop": keras.optimizers.RMSprop}
    for name in knobs.OPTIMIZERS:
        built = build_model([8], 0.01, optimizer=name).optimizer
        assert type(built) is expected[name]
        assert float(built.learning_rate) == pytest.approx(0.01)
    for name in knobs.ACTIVATIONS:
        assert callable(keras.activations.get(name))


@pytest.mark.parametrize("optimizer", knobs.OPTIMIZERS)
def test_the_learning_rate_is_a_copied_variable_not_part_of_the_compiled_shape(
        optimizer: str) -> None:
    slow, fast = (build_model([8], rate, optimizer=optimizer) for rate in (0.001, 0.1))
    assert architecture_of(slow) == architecture_of(fast)
    slow.optimizer.build(slow.trainable_variables)
    assert any(variable is slow.optimizer._learning_rate
               for variable in slow.optimizer.variables)


def test_every_knob_changes_the_compiled_shape() -> None:
    shapes = {architecture_of(build_model(units, 0.001, **arguments)) for units, arguments in [
        ([8], {}), ([16], {}), ([8, 8], {}), ([8], {"activation": "tanh"}),
        ([8], {"dropout": 0.1}), ([8], {"dropout": 0.2}), ([8], {"optimizer": "sgd"})]}
    assert len(shapes) == 7


def test_the_compiled_copy_draws_dropout_masks_with_threefry() -> None:
    # Keras's own dropout under XLA on a CPU made an epoch 11 times slower (see dropout.py);
    # the trial's model keeps Keras's layer, so its saved file needs nothing of ours.
    model = build_model([8, 8], 0.001, dropout=0.5)
    def dropouts(layers: list) -> list[str]:
        return [type(layer).__name__ for layer in layers if "Dropout" in type(layer).__name__]
    assert dropouts(Copy(model).model.layers) == ["_CopyDropout"] * 2
    assert dropouts(model.layers) == ["Dropout"] * 2


def test_dropout_masks_depend_on_the_seed_and_epoch_alone() -> None:
    assert np.array_equal(dropout_seeds(3, 1, 2), dropout_seeds(3, 1, 2))
    assert not np.array_equal(dropout_seeds(3, 1, 2), dropout_seeds(3, 2, 2))
    assert not np.array_equal(dropout_seeds(3, 1, 2), dropout_seeds(4, 1, 2))
    assert dropout_seeds(0, 0, 0).shape == (0, 2)


# --- the fast path (slow tier) ---------------------------------------------------------------

def _model(seed: int, learning_rate: float = 0.001, **knobs) -> keras.Model:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return build_model([128, 64], learning_rate, **knobs)


def _state(model: keras.Model) -> list[np.ndarray]:
    return [variable.numpy() for variable in model.weights + model.optimizer.variables]


def _fit(compiled: CompiledTraining, data, seed: int, epochs: int, model: keras.Model,
         initial_epoch: int = 0) -> float:
    loop = compiled.fit(model, data, batch_size=64, epochs=epochs, seed=seed,
                        initial_epoch=initial_epoch)
    return loop.evaluate(data.valid_images, data.y_valid)[1]


@pytest.fixture
def compiled():
    with CompiledTraining() as shared:
        yield shared


@pytest.mark.slow
@pytest.mark.parametrize("knobs", [{"optimizer": "sgd", "learning_rate": 0.1},
                                   {"optimizer": "rmsprop"}, {"activation": "gelu"},
                                   {"activation": "tanh"}], ids=["sgd", "rmsprop", "gelu", "tanh"])
def test_the_fast_path_steps_as_model_fit_does_on_the_same_batches(tiny_data, compiled,
                                                                   knobs: dict) -> None:
    # Without dropout nothing is random but the batch order: given the fast path's order,
    # model.fit must end on the same weights and optimizer state (float rounding apart).
    # This is stronger than an accuracy band, which for SGD at 0.1 and RMSprop on a small
    # slice spans several points from one batch order to the next.
    knobs = dict(knobs)
    rate = knobs.pop("learning_rate", 0.001)
    fast = _model(0, rate, **knobs)
    _fit(compiled, tiny_data, seed=0, epochs=2, model=fast)
    plain = _model(0, rate, **knobs)
    for epoch in range(2):
        order = epoch_order(0, epoch, len(tiny_data.x_train))
        plain.fit(tiny_data.x_train[order], tiny_data.y_train[order], batch_size=64,
                  epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(_state(fast), _state(plain), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("knobs", [{"dropout": 0.3}, {"activation": "gelu"}],
                         ids=["dropout", "gelu"])
def test_the_fast_path_lands_in_the_plain_fits_accuracy_band(slice_data, compiled,
                                                             knobs: dict) -> None:
    # As in test_training: 3 seeds, 2 epochs; the two ways' 3-seed means differ by noise
    # of about a point (measured here: +0.5 points with dropout, +0.9 with gelu), so
    # 3 points is three of it. Dropout's masks differ between the ways (the fast path
    # draws them from the seed and epoch), so this band is its accuracy check.
    plain, fast = [], []
    for seed in range(3):
        history = _model(seed, **knobs).fit(
            slice_data.x_train, slice_data.y_train, batch_size=64, epochs=2, verbose=0,
            validation_data=(slice_data.x_valid, slice_data.y_valid))
        plain.append(history.history["val_accuracy"][-1])
        fast.append(_fit(compiled, slice_data, seed, epochs=2, model=_model(seed, **knobs)))
    assert abs(np.mean(fast) - np.mean(plain)) < 0.03, (plain, fast)


@pytest.mark.slow
@pytest.mark.parametrize("knobs", [{"dropout": 0.3}, {"optimizer": "sgd", "dropout": 0.2},
                                   {"optimizer": "rmsprop"}],
                         ids=["dropout", "sgd-dropout", "rmsprop"])
def test_a_resumed_trial_ends_like_an_uninterrupted_one(tiny_data, compiled, tmp_path: Path,
                                                        knobs: dict) -> None:
    straight = _model(0, **knobs)
    _fit(compiled, tiny_data, seed=0, epochs=2, model=straight)
    # Another trial on the same compiled copies in between: nothing of it may leak.
    _fit(compiled, tiny_data, seed=1, epochs=1, model=_model(1, 0.01, **knobs))

    first = _model(0, **knobs)
    _fit(compiled, tiny_data, seed=0, epochs=1, model=first)
    store, key = CheckpointStore(tmp_path, "study"), {"epochs": 2}
    store.save("unit", CompiledPath.state(first), key, 1, {"val_accuracy": [0.0]}, [1.0])
    rebuilt = _model(7, **knobs)  # other initial weights: the checkpoint replaces them all
    restored = store.load("unit", key, CompiledPath.state(rebuilt))
    _fit(compiled, tiny_data, seed=0, epochs=2, model=rebuilt,
         initial_epoch=restored.epochs_done)
    for ours, theirs in zip(_state(rebuilt), _state(straight), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
