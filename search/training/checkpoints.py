"""Per-epoch checkpoints of unfinished trials, so a killed trial continues where it stopped,
on this machine or any other that reaches the study's artifact store.

Each unit (grid point and replicate) has a folder ``checkpoints/<study>/<unit>/`` in the
store: the model (a .keras template, written once per trial and process), and per epoch its
weights and optimizer state (.npz) with the pointer ``latest.json`` written after them
(``search.study.store_checkpoints``), so a kill or an outage during a save leaves the
previous checkpoint intact. Store failures raise ``StoreError`` (one line).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.study import artifact_store, store_checkpoints

if TYPE_CHECKING:
    import keras
    from optuna.artifacts._protocol import ArtifactStore

logger = logging.getLogger(__name__)

TEMPLATE = "model.keras"  # architecture and compile settings; the state comes per epoch


def _variables(model: keras.Model) -> list:
    """Everything training changes: the weights, then the optimizer's state."""
    model.optimizer.build(model.trainable_variables)
    return model.weights + model.optimizer.variables


@dataclasses.dataclass
class Restored:
    model: keras.Model
    epochs_done: int
    history: dict[str, list[float]]
    epoch_seconds: list[float]


def _model_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / TEMPLATE
        model.save(path)
        return path.read_bytes()


def _restore(template: bytes, state: bytes) -> keras.Model:
    import keras  # late: opening a study must not start TensorFlow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / TEMPLATE
        path.write_bytes(template)
        model = keras.saving.load_model(path)
    with np.load(io.BytesIO(state)) as arrays:
        values = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
    variables = _variables(model)
    if len(values) != len(variables):
        raise ValueError(f"{len(values)} arrays for {len(variables)} variables")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
    return model


class CheckpointStore:
    """Checkpoints of one study in the artifact store at ``location``, one folder per unit,
    named by the caller."""

    def __init__(self, location: str | Path, study_name: str,
                 store: ArtifactStore | None = None) -> None:
        self.location, self.study_name = str(location), study_name
        self.store = store or artifact_store.open_store(self.location)
        self._templates: set[str] = set()  # units whose template this process wrote
        self._latest: dict[str, store_checkpoints.Checkpoint] = {}  # to delete once replaced

    def template_id(self, name: str) -> str:
        return store_checkpoints.folder(self.study_name, name) + TEMPLATE

    def save(self, name: str, model: keras.Model, key: dict[str, Any],
             epochs_done: int, history: dict[str, list[float]],
             epoch_seconds: list[float]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, *[variable.numpy() for variable in _variables(model)])
        extra = {"key": key, "history": history, "epoch_seconds": epoch_seconds}
        with artifact_store.store_errors(self.location):
            # The architecture and compile settings are stored once per trial; each epoch
            # adds only the weights and optimizer state, a fraction of a whole model.save.
            if name not in self._templates:
                artifact_store.put_bytes(self.store, self.template_id(name),
                                         _model_bytes(model))
                self._templates.add(name)
            self._latest[name] = store_checkpoints.save_checkpoint(
                self.store, self.study_name, name, epochs_done, buffer.getvalue(), extra,
                previous=self._latest.get(name))

    def load(self, name: str, key: dict[str, Any]) -> Restored | None:
        """The checkpoint ``name``, if made under the same ``key``; else None."""
        with artifact_store.store_errors(self.location):
            found = store_checkpoints.load_checkpoint(self.store, self.study_name, name)
            template = None if found is None \
                else artifact_store.get_bytes(self.store, self.template_id(name))
        if found is None:
            return None
        checkpoint, state = found
        extra = checkpoint.extra
        if extra.get("key") != key:
            logger.warning("ignoring checkpoint %s: made for %s", name, extra.get("key"))
            return None
        try:
            if template is None:
                raise ValueError(f"{self.template_id(name)} is missing")
            model = _restore(template, state)
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable checkpoint %s (%s)", name, error)
            return None
        self._latest[name] = checkpoint
        return Restored(model, checkpoint.epoch, extra["history"], extra["epoch_seconds"])

    def discard(self, name: str) -> None:
        self._templates.discard(name)
        self._latest.pop(name, None)
        with artifact_store.store_errors(self.location):
            store_checkpoints.discard_checkpoints(self.store, self.study_name, name)

    def discard_all(self) -> None:
        self._templates.clear()
        self._latest.clear()
        with artifact_store.store_errors(self.location):
            store_checkpoints.discard_checkpoints(self.store, self.study_name)
