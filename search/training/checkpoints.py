"""Per-epoch checkpoints of unfinished trials, so a killed trial continues where it stopped.

One folder per unit (grid point and replicate) holds the model (a .keras file, written once
per trial), its weights and optimizer state after the last finished epoch (.npz) and a JSON
file with the history so far. Files are written under a temporary name and renamed, so a
kill during a save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

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


class CheckpointStore:
    """Checkpoints of one study, one sub-folder per unit, named by the caller."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._templates: set[Path] = set()  # folders whose template this process wrote

    def save(self, name: str, model: keras.Model, key: dict[str, Any],
             epochs_done: int, history: dict[str, list[float]],
             epoch_seconds: list[float]) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        # The architecture and compile settings are saved as a .keras file once per trial;
        # each epoch adds only the weights and optimizer state, a fraction of what a whole
        # model.save costs.
        if folder not in self._templates or not (folder / TEMPLATE).exists():
            model.save(folder / "template-tmp.keras")
            os.replace(folder / "template-tmp.keras", folder / TEMPLATE)
            self._templates.add(folder)
        state_name = f"state-epoch{epochs_done}.npz"
        with open(folder / "state.npz.tmp", "wb") as file:
            np.savez(file, *[variable.numpy() for variable in _variables(model)])
        os.replace(folder / "state.npz.tmp", folder / state_name)
        state = {"key": key, "epochs_done": epochs_done, "model": TEMPLATE, "state": state_name,
                 "history": history, "epoch_seconds": epoch_seconds}
        temporary = folder / "state.json.tmp"
        temporary.write_text(json.dumps(state))
        os.replace(temporary, folder / "state.json")
        # Only now is the older state unreferenced.
        for old in folder.glob("state-epoch*.npz"):
            if old.name != state_name:
                old.unlink(missing_ok=True)

    def load(self, name: str, key: dict[str, Any]) -> Restored | None:
        """The checkpoint ``name``, if made under the same ``key``; else None."""
        folder = self.root / name
        state_path = folder / "state.json"
        try:
            state = json.loads(state_path.read_text())
            if state["key"] != key:
                logger.warning("ignoring checkpoint %s: made for %s", state_path, state["key"])
                return None
            import keras  # late: opening a study must not start TensorFlow

            model = keras.saving.load_model(folder / state["model"])
            with np.load(folder / state["state"]) as arrays:
                values = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
            variables = _variables(model)
            if len(values) != len(variables):
                raise ValueError(f"{len(values)} arrays for {len(variables)} variables")
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable checkpoint %s (%s)", state_path, error)
            return None
        return Restored(model, state["epochs_done"], state["history"], state["epoch_seconds"])

    def discard(self, name: str) -> None:
        self._templates.discard(self.root / name)
        shutil.rmtree(self.root / name, ignore_errors=True)

    def discard_all(self) -> None:
        self._templates.clear()
        shutil.rmtree(self.root, ignore_errors=True)
