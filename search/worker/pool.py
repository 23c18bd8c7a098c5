"""``--workers N``: N worker processes on this machine sharing one study, one progress view.

Each worker is ``python -m search.worker``, given its ``RunOptions`` on standard input; they
coordinate only through the storage (see ``search.study.claims``), exactly as workers on
several machines do. This process starts them, shows the study's progress as read from the
storage, and waits.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from search.options import RunOptions
from search.signals import blocked_in_children, held_interrupts, raise_if_interrupted
from search.study import points, stages, units
from search.study.points import format_params
from search.worker.eta import Eta
from search.worker.progress import format_seconds

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


def worker_command() -> list[str]:
    """A worker's command line: nothing of the options, so ``ps`` shows no password."""
    return [sys.executable, "-m", "search.worker"]


def worker_input(options: RunOptions) -> str:
    """What a worker reads on its standard input: its options, as JSON."""
    return dataclasses.replace(options, workers=1).to_json()


def _start_worker(options: RunOptions) -> subprocess.Popen:
    with blocked_in_children():  # a Ctrl-C while it starts waits for its quiet_start
        worker = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, text=True)
    worker.stdin.write(worker_input(options))
    worker.stdin.close()
    return worker


def _stop(workers: list[subprocess.Popen]) -> None:
    """Interrupt the workers still running (each records its trial as interrupted), wait."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)
    for worker in workers:
        worker.wait()


def work_in_processes(options: RunOptions, study: optuna.Study,
                      on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None
                      ) -> tuple[bool, list[str]]:
    """Start the workers, watch the study until they exit; ``on_trial_end`` hears of each
    trial that ended.

    Returns whether the run was interrupted, and a line for each worker that failed. Should
    this process fail while watching (its storage gone, say), the workers are stopped
    first: none is left running without the process that started it.
    """
    if options.show_progress:
        print(f"starting {options.workers} workers with {options.threads} CPU thread(s) each",
              file=sys.stderr)
    workers: list[subprocess.Popen] = []
    interrupted = False
    try:
        for _ in range(options.workers):
            with held_interrupts():  # a Ctrl-C now stops the workers started so far too
                workers.append(_start_worker(options))
        # A worker that finds nothing left to claim never trains: wait for no more pace
        # than there are units left.
        statuses = units.unit_status(study)
        left = stages.planned(study, statuses) - sum(s.complete is not None for s in statuses)
        monitor = StudyMonitor(study, options.show_progress, on_trial_end,
                               workers=max(1, min(options.workers, left)))
        # poll() every worker each round (no short-circuit): it also reaps the dead ones.
        while [worker.poll() for worker in workers].count(None):
            raise_if_interrupted()
            monitor.poll()
            time.sleep(WATCH_SECONDS)
        monitor.poll()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the workers too; a kill of this process alone does not.
        interrupted = True
    finally:
        _stop(workers)
    codes = [worker.returncode for worker in workers]
    failed = [f"worker {i + 1} exited with {code}" for i, code in enumerate(codes)
              if code not in (0, 130)]
    return interrupted or 130 in codes, failed
