"""Per-epoch checkpoints of unfinished trials, so a killed trial continues where it stopped.

One folder per unit (grid point and replicate) holds the training state after the last
finished epoch (every variable training changes, as an .npz) and a JSON file with the
history so far. The model itself is not saved: a resumed trial rebuilds it through its
builder and puts the state back, so nothing depends on deserializing the user's classes.
Files are written under a temporary name and renamed, so a kill during a save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Restored:
    epochs_done: int
    history: dict[str, list[float]]
    epoch_seconds: list[float]


class CheckpointStore:
    """Checkpoints of one study, one sub-folder per unit, named by the caller."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, name: str, variables: Sequence[Any], key: dict[str, Any],
             epochs_done: int, history: dict[str, list[float]],
             epoch_seconds: list[float]) -> None:
        """Keep ``variables`` (Keras variables, in an order the caller fixes) after epoch
        ``epochs_done``, with the history so far; ``key`` says what they belong to."""
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        state_name = f"state-epoch{epochs_done}.npz"
        with open(folder / "state.npz.tmp", "wb") as file:
            np.savez(file, *[variable.numpy() for variable in variables])
        os.replace(folder / "state.npz.tmp", folder / state_name)
        state = {"key": key, "epochs_done": epochs_done, "state": state_name,
                 "history": history, "epoch_seconds": epoch_seconds}
        temporary = folder / "state.json.tmp"
        temporary.write_text(json.dumps(state))
        os.replace(temporary, folder / "state.json")
        # Only now is the older state unreferenced.
        for old in folder.glob("state-epoch*.npz"):
            if old.name != state_name:
                old.unlink(missing_ok=True)

    def load(self, name: str, key: dict[str, Any],
             variables: Sequence[Any]) -> Restored | None:
        """Put the checkpoint ``name`` into ``variables`` (the same model's, built anew),
        if one was made under the same ``key``; else None, the variables untouched."""
        state_path = self.root / name / "state.json"
        try:
            state = json.loads(state_path.read_text())
            if state["key"] != key:
                logger.warning("ignoring checkpoint %s: made for %s", state_path, state["key"])
                return None
            with np.load(self.root / name / state["state"]) as arrays:
                values = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
            if [np.shape(value) for value in values] != [tuple(v.shape) for v in variables]:
                raise ValueError(f"{len(values)} arrays do not fit {len(variables)} variables")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable checkpoint %s (%s)", state_path, error)
            return None
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        return Restored(state["epochs_done"], state["history"], state["epoch_seconds"])

    def discard(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)

    def discard_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
