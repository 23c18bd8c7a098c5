"""``--workers N``: N worker processes on this machine sharing one study, one progress view.

Each worker is ``python -m search.run ... --worker-process`` with its share of the CPU
threads; they coordinate only through the storage (see ``search.claims``), exactly as
workers on several machines do. This process starts them, shows the study's progress as
read from the storage, and waits.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from search import grid
from search.definition import StudyDefinition
from search.progress import format_params, format_seconds
from search.storage import Storage

POLL_SECONDS = 1.0


def worker_command(args: argparse.Namespace, storage_url: str, threads: int) -> list[str]:
    command = [sys.executable, "-m", "search.run", "--study", args.study,
               "--storage", storage_url, "--threads", str(threads), "--worker-process"]
    for flag, value in (("--data-dir", args.data_dir), ("--epochs", args.epochs),
                        ("--studies-dir", args.studies_dir)):
        if value is not None:
            command += [flag, str(value)]
    if args.quick:
        command.append("--quick")
    if args.verbose:
        command.append("--verbose")
    return command


class StudyMonitor:
    """Prints what the storage shows: trials starting, epochs finishing, trials ending."""

    def __init__(self, study: optuna.Study, definition: StudyDefinition) -> None:
        self.study = study
        self.definition = definition
        self.seen_epochs: dict[int, int] = {}
        self.ended: set[int] = {t.number for t in study.get_trials(deepcopy=False)
                                if t.state.is_finished()}
        self.started = time.perf_counter()

    def poll(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        total = len(self.definition.grid)
        for trial in trials:
            if trial.number in self.ended:
                continue
            if trial.number not in self.seen_epochs and trial.params:
                self.seen_epochs[trial.number] = 0
                print(f"trial #{trial.number} started: {format_params(trial.params)}",
                      file=sys.stderr)
            steps = sorted(trial.intermediate_values)
            for step in steps:
                if step > self.seen_epochs.get(trial.number, 0):
                    self.seen_epochs[trial.number] = step
                    print(f"  #{trial.number} epoch {step}/{self.definition.epochs} val_acc "
                          f"{trial.intermediate_values[step]:.4f}", file=sys.stderr)
            if trial.state.is_finished():
                self.ended.add(trial.number)
                outcome = (f"val_accuracy {trial.value:.4f}" if trial.state == TrialState.COMPLETE
                           else f"{trial.state.name}: {trial.user_attrs.get('failure', '')}")
                print(f"  #{trial.number} {format_params(trial.params)} ended, {outcome} "
                      f"[{done} of {total} complete, elapsed "
                      f"{format_seconds(time.perf_counter() - self.started)}]", file=sys.stderr)


def run_pool(args: argparse.Namespace, definition: StudyDefinition, storage: Storage,
             threads: int) -> int:
    """Start ``args.workers`` workers, watch the study until they exit; return an exit code."""
    command = worker_command(args, storage.url, threads)
    print(f"starting {args.workers} workers with {threads} CPU thread(s) each",
          file=sys.stderr)
    workers = [subprocess.Popen(command) for _ in range(args.workers)]
    monitor = StudyMonitor(optuna.load_study(study_name=definition.name,
                                             storage=storage.optuna), definition)
    interrupted = False
    try:
        # poll() every worker each round (no short-circuit): it also reaps the dead ones.
        while [worker.poll() for worker in workers].count(None):
            monitor.poll()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the workers too; a kill of this process alone does not.
        interrupted = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)
        for worker in workers:
            worker.wait()
    monitor.poll()
    codes = [worker.returncode for worker in workers]
    if interrupted or 130 in codes:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    failed = [f"worker {i + 1} exited with {code}" for i, code in enumerate(codes) if code]
    if failed:
        print("; ".join(failed), file=sys.stderr)
    # A worker that died is not a failed study: the others pick up its point.
    states = {point.state(definition.max_attempts)
              for point in grid.grid_status(monitor.study, definition)}
    return 1 if failed and states & {"pending", "running"} else 0
