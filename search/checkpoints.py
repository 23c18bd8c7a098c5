"""Per-epoch checkpoints of unfinished trials, so a killed trial continues where it stopped.

One folder per grid point holds the model (weights and optimizer state) after the last
finished epoch and a JSON file with the history so far. Files are written under a temporary
name and renamed, so a kill during a save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Restored:
    model: keras.Model
    epochs_done: int
    history: dict[str, list[float]]
    epoch_seconds: list[float]


class CheckpointStore:
    """Checkpoints of one study, one sub-folder per grid point, named by its parameters."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, params: dict[str, Any]) -> Path:
        return self.root / ",".join(f"{name}={value}" for name, value in params.items())

    def save(self, params: dict[str, Any], model: keras.Model, key: dict[str, Any],
             epochs_done: int, history: dict[str, list[float]],
             epoch_seconds: list[float]) -> None:
        folder = self._folder(params)
        folder.mkdir(parents=True, exist_ok=True)
        model_name = f"model-epoch{epochs_done}.keras"
        model.save(folder / model_name)
        state = {"key": key, "epochs_done": epochs_done, "model": model_name,
                 "history": history, "epoch_seconds": epoch_seconds}
        temporary = folder / "state.json.tmp"
        temporary.write_text(json.dumps(state))
        os.replace(temporary, folder / "state.json")
        # Only now is the older model unreferenced.
        for old in folder.glob("model-epoch*.keras"):
            if old.name != model_name:
                old.unlink(missing_ok=True)

    def load(self, params: dict[str, Any], key: dict[str, Any]) -> Restored | None:
        """The checkpoint of the point ``params``, if made under the same ``key``; else None."""
        state_path = self._folder(params) / "state.json"
        try:
            state = json.loads(state_path.read_text())
            if state["key"] != key:
                logger.warning("ignoring checkpoint %s: made for %s", state_path, state["key"])
                return None
            import keras  # late: opening a study must not start TensorFlow

            model = keras.saving.load_model(self._folder(params) / state["model"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable checkpoint %s (%s)", state_path, error)
            return None
        return Restored(model, state["epochs_done"], state["history"], state["epoch_seconds"])

    def discard(self, params: dict[str, Any]) -> None:
        shutil.rmtree(self._folder(params), ignore_errors=True)

    def discard_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
