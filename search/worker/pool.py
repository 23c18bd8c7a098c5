"""``--workers N``: this process and N - 1 worker processes on this machine sharing one study,
one progress view.

Each other worker is ``python -m search.worker``. It starts at once, with its
``RunOptions`` on standard input, and imports TensorFlow and loads the data while this
process checks the definition, the builder and the data; then it waits. Only once the check
has passed and the study is stored does this process write "go" (``Workers.go``): the
worker then opens the storage and trains. On a failed check or a Ctrl-C before that, its
input closes without a go and it is ended (``Workers.stop``): it has stored and claimed
nothing. From the go on, the workers coordinate only through the storage (see
``search.study.claims``), exactly as workers on several machines do, and this process, one
of them, also shows the study's progress as read from the storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import optuna

from search.errors import Interrupted
from search.options import RunOptions
from search.signals import blocked_in_children, held_interrupts, raise_if_interrupted
from search.study import stages, units
from search.study.storage import Storage
from search.worker import process
from search.worker.monitor import StudyMonitor, watching
from search.worker.prepared import Prepared

GO = "go"


def worker_command(verbose: bool = False) -> list[str]:
    """A worker's command line: nothing of the options, so ``ps`` shows no password."""
    return [sys.executable, "-m", "search.worker", *(["--verbose"] if verbose else [])]


def worker_input(options: RunOptions) -> str:
    """What a worker reads first on its standard input: its options, as one line of JSON."""
    return dataclasses.replace(options, workers=1).to_json() + "\n"


class Workers:
    """The other workers of a run, started early; ``go`` lets them store and train."""

    def __init__(self, processes: list[subprocess.Popen]) -> None:
        self.processes = processes
        self.told = False

    def go(self, options: RunOptions) -> None:
        if options.show_progress:
            print(f"starting {options.workers} workers with {options.threads} CPU thread(s) "
                  "each", file=sys.stderr)
        with held_interrupts():  # each is told, or none: a Ctrl-C then stops them all
            for worker in self.processes:
                with contextlib.suppress(OSError):  # one that has died: its code says so
                    worker.stdin.write(GO + "\n")
                    worker.stdin.close()
            self.told = True

    def stop(self) -> None:
        """End them all and wait. Before the go, at once: a worker has stored and claimed
        nothing then, and SIGTERM ends it without a word (it keeps the default action until
        the go). After it, with an interrupt, as Ctrl-C does: each records its trial as
        interrupted."""
        for worker in self.processes:
            with contextlib.suppress(OSError):
                worker.stdin.close()
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT if self.told else signal.SIGTERM)
        for worker in self.processes:
            worker.wait()

    def wait(self) -> None:
        """Until they exit: their last units done, they find nothing more to claim."""
        while [worker.poll() for worker in self.processes].count(None):
            raise_if_interrupted()
            time.sleep(0.1)

    def failures(self) -> list[str]:
        """A line for each worker that failed; this process is worker 1."""
        return [f"worker {number} exited with {worker.returncode}"
                for number, worker in enumerate(self.processes, start=2)
                if worker.returncode not in (0, 130)]


def _start(options: RunOptions, verbose: bool) -> subprocess.Popen:
    worker = subprocess.Popen(worker_command(verbose), stdin=subprocess.PIPE, text=True)
    worker.stdin.write(worker_input(options))
    worker.stdin.flush()
    return worker


@contextlib.contextmanager
def started_early(options: RunOptions, local: bool = True) -> Iterator[Workers]:
    """The other ``options.workers - 1`` workers, started now (none where ``local`` is
    False: a cluster's start elsewhere); none outlives the block."""
    workers = Workers([])
    verbose = logging.getLogger("search").getEffectiveLevel() <= logging.INFO
    try:
        # Blocked while they start: a Ctrl-C or SIGTERM lands here after a start, never
        # inside one, and waits in each worker until its handling is in place.
        with blocked_in_children():
            for _ in range(options.workers - 1 if local else 0):
                workers.processes.append(_start(options, verbose))
        yield workers
    finally:
        workers.stop()


def work_with_others(options: RunOptions, storage: Storage, study: optuna.Study,
                     prepared: Prepared, workers: Workers,
                     on_trial_end: Callable[[optuna.trial.FrozenTrial], None]) -> list[str]:
    """Tell the others to go, train units here while showing the whole study's progress,
    then wait for the others; a line for each worker that failed. Raises Interrupted on
    Ctrl-C, after every worker has stopped."""
    # A worker that finds nothing left to claim never trains: no more pace than units left.
    statuses = units.unit_status(study)
    left = stages.planned(study, statuses) - sum(s.complete is not None for s in statuses)
    monitor = StudyMonitor(optuna.load_study(study_name=study.study_name, storage=storage.rdb),
                           options.show_progress, on_trial_end,
                           workers=max(1, min(options.workers, left)))
    workers.go(options)
    try:
        with watching(monitor):
            process.work_here(options, storage, study, prepared.dataset, prepared.builder,
                              quiet=True)
            workers.wait()
    except KeyboardInterrupt:
        raise Interrupted() from None
    finally:
        workers.stop()
    if 130 in [worker.returncode for worker in workers.processes]:
        raise Interrupted()  # one of them was interrupted: the study is not done
    return workers.failures()
