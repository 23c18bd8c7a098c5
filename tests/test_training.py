"""The compiled loop against the plain Keras loop, and its contracts: resumable, shareable.

Not timed: ``scripts/bench.py`` measures speed. These tests pin what the speed must not cost.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np
import pytest

from search import data
from search.training.checkpoints import CheckpointStore
from search.training.compiled import CompiledLoop, CompiledTraining
from search.training.copies import EVALUATION_CHUNK
from search.training.model import build_model
from search.worker.paths import CompiledPath

pytestmark = pytest.mark.slow

HIDDEN_UNITS = (128, 64)  # the mnist study's model
BATCH_SIZE = 64


class _Logs(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[tuple[int, dict]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs.append((epoch, dict(logs or {})))


@pytest.fixture
def compiled() -> Iterator[CompiledTraining]:
    """A worker's compiled training, fresh for each test: no copy of another test's trials."""
    with CompiledTraining() as shared:
        yield shared


def _model(seed: int, learning_rate: float = 0.001) -> keras.Model:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return build_model(HIDDEN_UNITS, learning_rate)


def _state(model: keras.Model) -> list[np.ndarray]:
    return [variable.numpy() for variable in model.weights + model.optimizer.variables]


def _train(compiled: CompiledTraining, data, seed: int, epochs: int,
           learning_rate: float = 0.001, model: keras.Model | None = None,
           initial_epoch: int = 0):
    model = model or _model(seed, learning_rate)
    logs = _Logs()
    compiled.fit(model, data, batch_size=BATCH_SIZE, epochs=epochs, seed=seed,
                 initial_epoch=initial_epoch, callbacks=[logs])
    return model, logs.epochs


def test_trains_to_the_plain_loops_accuracy(slice_data, compiled):
    # On this slice either loop's validation accuracy after 2 epochs varies by about
    # 1.2 points from seed to seed (batch order, initial weights); the difference of two
    # 3-seed means has a standard deviation near 1 point, so 3 points is 3 of them. A real
    # fault (a stale weight copy, a learning rate not applied, a wrong gradient) costs
    # far more: lr 1e-4 instead of 1e-3 ends near 75% instead of 87%.
    plain, fast = [], []
    for seed in range(3):
        model = _model(seed)
        history = model.fit(slice_data.x_train, slice_data.y_train, batch_size=BATCH_SIZE,
                            epochs=2, validation_data=(slice_data.x_valid, slice_data.y_valid),
                            verbose=0)
        plain.append(history.history["val_accuracy"][-1])
        _, epochs = _train(compiled, slice_data, seed, epochs=2)
        fast.append(epochs[-1][1]["val_accuracy"])
    assert abs(np.mean(fast) - np.mean(plain)) < 0.03, (plain, fast)


def test_history_has_one_entry_per_epoch_with_every_metric(tiny_data, compiled):
    _, epochs = _train(compiled, tiny_data, seed=0, epochs=3)
    assert [epoch for epoch, _ in epochs] == [0, 1, 2]
    for _, logs in epochs:
        assert set(logs) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert all(np.isfinite(value) for value in logs.values())


def test_resumed_from_a_checkpoint_ends_like_an_uninterrupted_run(slice_data, tmp_path,
                                                                   compiled):
    straight, straight_epochs = _train(compiled, slice_data, seed=0, epochs=2)

    first, first_epochs = _train(compiled, slice_data, seed=0, epochs=1)
    store = CheckpointStore(tmp_path, "study")
    name = f"learning_rate=0.001,batch_size={BATCH_SIZE},replicate=0"
    key = {"epochs": 2}
    store.save(name, CompiledPath.state(first), key, 1,
               {"val_accuracy": [first_epochs[0][1]["val_accuracy"]]}, [1.0])
    rebuilt = _model(seed=7)  # other initial weights: the checkpoint must replace them all
    restored = store.load(name, key, CompiledPath.state(rebuilt))
    resumed, resumed_epochs = _train(compiled, slice_data, seed=0, epochs=2,
                                     model=rebuilt, initial_epoch=restored.epochs_done)

    assert [epoch for epoch, _ in resumed_epochs] == [1]
    for ours, theirs in zip(_state(resumed), _state(straight), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert resumed_epochs[0][1] == pytest.approx(straight_epochs[1][1], abs=1e-6)


def test_trials_sharing_compiled_copies_match_a_fresh_start(slice_data, compiled):
    # Compiled copies are reused across trials: nothing of one trial (learning rate,
    # Adam's moments and step count) may leak into the next.
    fresh, _ = _train(compiled, slice_data, seed=0, epochs=1, learning_rate=0.001)
    _train(compiled, slice_data, seed=1, epochs=1, learning_rate=0.01)
    again, _ = _train(compiled, slice_data, seed=0, epochs=1, learning_rate=0.001)
    for ours, theirs in zip(_state(again), _state(fresh), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_trial_started_while_compiling_ahead_matches_one_without(slice_data, compiled):
    alone, _ = _train(compiled, slice_data, seed=0, epochs=1)
    with CompiledTraining() as ahead:  # nothing compiled yet
        compiling = ahead.compile_ahead(_model(seed=5), slice_data, [BATCH_SIZE])
        # Starts while its shape compiles.
        during, _ = _train(ahead, slice_data, seed=0, epochs=1)
        compiling.join()
    for ours, theirs in zip(_state(during), _state(alone), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_evaluate_covers_a_set_that_is_not_a_whole_number_of_chunks(slice_data, compiled):
    model = _model(seed=0)
    size = EVALUATION_CHUNK + 17  # one whole chunk and one padded
    images = np.concatenate([slice_data.train_images, slice_data.valid_images])[:size]
    labels = np.concatenate([slice_data.y_train, slice_data.y_valid])[:size]
    loss, accuracy = CompiledLoop(model, compiled).evaluate(images, labels)
    expected_loss, expected_accuracy = model.evaluate(data.scale(images), labels, verbose=0)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-6)
