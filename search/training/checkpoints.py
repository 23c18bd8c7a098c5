"""Per-epoch checkpoints of unfinished trials, so a killed trial continues where it stopped,
on this machine or any other that reaches the study's artifact store.

Each unit (grid point and replicate) has a folder ``checkpoints/<study>/<unit>/`` in the
store: per epoch, every variable training changes (.npz), with the pointer ``latest.json``
written after it (``search.study.store_checkpoints``), so a kill or an outage during a save
leaves the previous checkpoint intact. The model itself is not saved: a resumed trial
rebuilds it through its builder and puts the state back, so nothing depends on
deserializing the user's classes. Store failures raise ``StoreError`` (one line).
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.study import artifact_store, store_checkpoints

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Restored:
    epochs_done: int
    history: dict[str, list[float]]
    epoch_seconds: list[float]


def _arrays(state: bytes, variables: Sequence[Any]) -> list[np.ndarray]:
    with np.load(io.BytesIO(state)) as arrays:
        values = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
    if [np.shape(value) for value in values] != [tuple(v.shape) for v in variables]:
        raise ValueError(f"{len(values)} arrays do not fit {len(variables)} variables")
    return values


class CheckpointStore:
    """Checkpoints of one study in the artifact store at ``location``, one folder per unit,
    named by the caller."""

    def __init__(self, location: str | Path, study_name: str,
                 store: ArtifactStore | None = None) -> None:
        self.location, self.study_name = str(location), study_name
        self.store = store or artifact_store.open_store(self.location)
        self._latest: dict[str, store_checkpoints.Checkpoint] = {}  # to delete once replaced

    def save(self, name: str, variables: Sequence[Any], key: dict[str, Any],
             epochs_done: int, history: dict[str, list[float]],
             epoch_seconds: list[float]) -> None:
        """Keep ``variables`` (Keras variables, in an order the caller fixes) after epoch
        ``epochs_done``, with the history so far; ``key`` says what they belong to."""
        buffer = io.BytesIO()
        np.savez(buffer, *[variable.numpy() for variable in variables])
        extra = {"key": key, "history": history, "epoch_seconds": epoch_seconds}
        with artifact_store.store_errors(self.location):
            self._latest[name] = store_checkpoints.save_checkpoint(
                self.store, self.study_name, name, epochs_done, buffer.getvalue(), extra,
                previous=self._latest.get(name))

    def load(self, name: str, key: dict[str, Any],
             variables: Sequence[Any]) -> Restored | None:
        """Put the checkpoint ``name`` into ``variables`` (the same model's, built anew),
        if one was made under the same ``key``; else None, the variables untouched."""
        with artifact_store.store_errors(self.location):
            found = store_checkpoints.load_checkpoint(self.store, self.study_name, name)
        if found is None:
            return None
        checkpoint, state = found
        extra = checkpoint.extra
        if extra.get("key") != key:
            logger.warning("ignoring checkpoint %s: made for %s", name, extra.get("key"))
            return None
        try:
            values = _arrays(state, variables)
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable checkpoint %s (%s)", name, error)
            return None
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        self._latest[name] = checkpoint
        return Restored(checkpoint.epoch, extra["history"], extra["epoch_seconds"])

    def discard(self, name: str) -> None:
        self._latest.pop(name, None)
        with artifact_store.store_errors(self.location):
            store_checkpoints.discard_checkpoints(self.store, self.study_name, name)

    def discard_all(self) -> None:
        self._latest.clear()
        with artifact_store.store_errors(self.location):
            store_checkpoints.discard_checkpoints(self.store, self.study_name)
