"""What a person watching a study sees: trial k of n, point and replicate, a bar, ETA.

On a terminal each trial redraws one line per epoch in place; elsewhere (CI, a log file)
it prints one line per epoch. Everything goes to stderr, leaving stdout for results. The
ETA appears from the second epoch on (``search.worker.eta``).
"""

from __future__ import annotations

import sys
import time

import optuna

from search.study import points, stages, units
from search.study.points import Unit, format_params
from search.worker.eta import Eta


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def describe_unit(unit: Unit, repeats: int) -> str:
    """``point 4 of 9, replicate 2 of 3: learning_rate=0.001 batch_size=32``; a sampled
    study's ``search trial 4 of 40: ...`` or ``confirm run 2 of 3 of search trial 7: ...``."""
    if unit.stage == points.SEARCH_STAGE:
        where = f"search trial {unit.point + 1} of {unit.grid_size}"
    elif unit.stage == points.CONFIRM_STAGE:
        where = f"confirm run {unit.replicate + 1} of {repeats} of search trial {unit.point + 1}"
    else:
        where = f"point {unit.point + 1} of {unit.grid_size}, replicate {unit.replicate + 1} " \
                f"of {repeats}"
    return f"{where}: {format_params(unit.params)}"


class Progress:
    """Listens to one worker's trials and epochs."""

    def __init__(self, study: optuna.Study) -> None:
        statuses = units.unit_status(study)
        self.repeats = study.user_attrs.get(points.REPEATS, 1)
        self.epochs = study.user_attrs[points.BUDGET]["epochs"]
        self.metric = points.objective_of(study)[0]
        self.total = stages.planned(study, statuses)
        self.done = sum(status.complete is not None for status in statuses)
        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()
        self.eta = Eta(workers=1)

    def _write(self, text: str, final: bool = True) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def trial_start(self, trial: optuna.Trial, unit: Unit) -> None:
        self._write(f"trial {self.done + 1} of {self.total} (#{trial.number}), "
                    f"{describe_unit(unit, self.repeats)}")

    def epoch_end(self, trial: optuna.Trial, epoch: int, logs: dict[str, float],
                  seconds: float) -> None:
        now, epochs = time.perf_counter(), self.epochs
        self.eta.epoch_ended("this worker", now)
        left_in_trial = epochs - epoch
        left_in_study = left_in_trial + max(0, self.total - self.done - 1) * epochs
        filled = 20 * epoch // epochs
        bar = "#" * filled + "." * (20 - filled)
        scores = " ".join(f"{name} {value:.4f}" for name, value in logs.items())
        text = (f"  epoch {epoch:>2}/{epochs} [{bar}] {scores}  {seconds:.1f}s/epoch  "
                f"elapsed {format_seconds(now - self.started)}")
        study_left = self.eta.seconds_left(left_in_study, now)
        if study_left is not None:
            trial_left = self.eta.seconds_left(left_in_trial, now)
            text += (f"  ETA trial {format_seconds(trial_left)}, "
                     f"study {format_seconds(study_left)}")
        self._write(text, final=not self.tty or epoch == epochs)

    def trial_end(self, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        if trial.state == optuna.trial.TrialState.COMPLETE:
            self.done += 1
            tests = " ".join(f"{name} {value:.4f}"
                             for name, value in attrs.get(points.TEST_SCORES, {}).items())
            self._write(f"  done: {self.metric} {trial.value:.4f} (best epoch "
                        f"{attrs.get(points.BEST_EPOCH)}), {tests or 'no test set'}, "
                        f"{attrs.get(points.SECONDS, 0):.1f}s training "
                        f"[{self.done} of {self.total} trials complete]")
        else:
            self._write(f"  {trial.state.name}: {attrs.get(points.FAILURE, '')}")
