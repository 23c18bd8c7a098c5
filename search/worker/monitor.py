"""What the process that starts ``--workers N`` shows: the study's progress as the storage
holds it, one line per event, for its own trials and the other workers' alike.

``StudyMonitor.poll`` reads the study once and prints what is new; ``Watching`` polls it
from a thread while this process trains a unit of its own.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

import optuna
from optuna.trial import TrialState

from search.study import points, stages, units
from search.study.points import format_params
from search.worker.eta import Eta
from search.worker.progress import format_seconds

logger = logging.getLogger(__name__)

# How often the process that started the workers reads the study to show its progress.
WATCH_SECONDS = 1.0


class StudyMonitor:
    """Prints what the storage shows, one line per event (a trial started, an epoch ended, a
    trial ended with its value, the study's progress and ETA), and tells ``on_trial_end`` of
    each trial that ended."""

    def __init__(self, study: optuna.Study, show: bool,
                 on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None,
                 workers: int = 1, clock: Callable[[], float] = time.perf_counter) -> None:
        self.study = study
        self.show = show
        self.on_trial_end = on_trial_end
        self.epochs = study.user_attrs[points.BUDGET]["epochs"]
        self.metric = points.objective_of(study)[0]
        self.seen_epochs: dict[int, int] = {}
        self.ended: set[int] = {t.number for t in study.get_trials(deepcopy=False)
                                if t.state.is_finished()}
        self.clock = clock
        self.started = clock()
        self.eta = Eta(workers)

    def _name(self, trial: optuna.trial.FrozenTrial) -> str:
        replicate = trial.user_attrs.get(points.REPLICATE, 0)
        stage = trial.user_attrs.get(points.STAGE)
        return (f"#{trial.number} {stage + ' ' if stage else ''}{format_params(trial.params)}"
                f"{'' if stage == points.SEARCH_STAGE else f' replicate {replicate + 1}'}")

    def _say(self, text: str) -> None:
        if self.show:
            print(text, file=sys.stderr)

    def _epochs(self, trial: optuna.trial.FrozenTrial, now: float) -> None:
        """A line per epoch newly reported; each counts toward its worker's pace."""
        worker = trial.system_attrs.get(points.OWNER, trial.number)
        for step in sorted(trial.intermediate_values):
            if step > self.seen_epochs[trial.number]:
                self.seen_epochs[trial.number] = step
                self.eta.epoch_ended(worker, now)
                self._say(f"  #{trial.number} epoch {step}/{self.epochs} {self.metric} "
                          f"{trial.intermediate_values[step]:.4f}")

    def _status(self, trials: list[optuna.trial.FrozenTrial], now: float) -> str:
        """``3 of 27 trials complete, elapsed 41s, ETA 5m02s`` (no ETA until it means
        something)."""
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        total = stages.planned(self.study, units.unit_status(self.study, trials))
        running = sum(len(t.intermediate_values) for t in trials if not t.state.is_finished())
        left = self.eta.seconds_left((total - done) * self.epochs - running, now)
        return (f"{done} of {total} trials complete, elapsed "
                f"{format_seconds(now - self.started)}"
                f"{'' if left is None else ', ETA ' + format_seconds(left)}")

    def poll(self) -> None:
        trials, now = self.study.get_trials(deepcopy=False), self.clock()
        for trial in trials:
            if trial.number in self.ended:
                continue
            if trial.number not in self.seen_epochs:
                self.seen_epochs[trial.number] = 0
                self._say(f"trial {self._name(trial)} started")
            self._epochs(trial, now)
            if trial.state.is_finished():
                self.ended.add(trial.number)
                outcome = (f"{self.metric} {trial.value:.4f}" if trial.state == TrialState.COMPLETE
                           else f"{trial.state.name}: {trial.user_attrs.get(points.FAILURE)}")
                self._say(f"  {self._name(trial)} ended, {outcome} "
                          f"[{self._status(trials, now)}]")
                if self.on_trial_end is not None:
                    self.on_trial_end(trial)


@contextlib.contextmanager
def watching(monitor: StudyMonitor, seconds: float = WATCH_SECONDS) -> Iterator[None]:
    """Poll ``monitor`` every ``seconds`` from a thread while the block runs (this process
    trains meanwhile), then once more here: every trial's end is shown, and told, once."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(seconds):
            try:
                monitor.poll()
            except Exception as error:  # the next poll tries again; training goes on
                logger.warning("progress not read from the storage: %s", error)

    thread = threading.Thread(target=watch, name="study-monitor", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    monitor.poll()
