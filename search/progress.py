"""What a person watching a study sees: trial k of n, a bar per trial on a terminal, ETA.

On a terminal each trial redraws one line per epoch in place; elsewhere (CI, a log file)
it prints one line per epoch. Everything goes to stderr, leaving stdout for results.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import optuna

from search.definition import StudyDefinition


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())


class Progress:
    """Listens to one worker's trials and epochs."""

    def __init__(self, definition: StudyDefinition, done_before: int,
                 stream: TextIO | None = None, label: str = "") -> None:
        self.definition = definition
        self.total = len(definition.grid)
        self.done = done_before
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.label = label
        self.started = time.perf_counter()
        self.epochs_run = 0
        self.trial_started = self.started
        self.first_epoch = 0

    def _write(self, text: str, final: bool = True) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def trial_start(self, trial: optuna.Trial, params: dict[str, Any]) -> None:
        self.trial_started = time.perf_counter()
        self.first_epoch = 0
        self._write(f"{self.label}trial {self.done + 1} of {self.total} "
                    f"(#{trial.number}): {format_params(params)}")

    def epoch_end(self, trial: optuna.Trial, epoch: int, logs: dict[str, float],
                  seconds: float) -> None:
        self.epochs_run += 1
        if self.first_epoch == 0:
            self.first_epoch = epoch
        epochs = self.definition.epochs
        per_epoch = (time.perf_counter() - self.started) / self.epochs_run
        left_in_trial = epochs - epoch
        left_in_study = left_in_trial + max(0, self.total - self.done - 1) * epochs
        width = 20
        filled = width * epoch // epochs
        bar = "#" * filled + "." * (width - filled)
        text = (f"{self.label}  epoch {epoch:>2}/{epochs} [{bar}] loss {logs['loss']:.4f} "
                f"acc {logs['accuracy']:.4f} val_loss {logs['val_loss']:.4f} "
                f"val_acc {logs['val_accuracy']:.4f}  {seconds:.1f}s/epoch  "
                f"elapsed {format_seconds(time.perf_counter() - self.started)}  "
                f"ETA trial {format_seconds(left_in_trial * per_epoch)}, "
                f"study {format_seconds(left_in_study * per_epoch)}")
        self._write(text, final=not self.tty or epoch == epochs)

    def trial_end(self, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        if trial.state == optuna.trial.TrialState.COMPLETE:
            self.done += 1
            self._write(f"{self.label}  done: val_accuracy {trial.value:.4f} (best epoch "
                        f"{attrs.get('best_epoch')}), test_accuracy "
                        f"{attrs.get('test_accuracy', float('nan')):.4f}, "
                        f"{attrs.get('seconds', 0):.1f}s training")
        else:
            self._write(f"{self.label}  {trial.state.name}: {attrs.get('failure', '')}")
