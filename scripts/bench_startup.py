"""Seconds to the first epoch: where a run's fixed cost goes, for the built-in MLP and the
keras-io convnet, with 1 and 2 workers.

    python scripts/bench_startup.py               # the README's table (about 3 minutes)
    python scripts/bench_startup.py --moments     # also issue 26's moments: the small convnet
                                                  # study whole, 2 workers (about 2 minutes)
    python scripts/bench_startup.py --repo DIR    # the same commands in another checkout
                                                  # (the code before a change, say)

Each run is the real command, ``python -m search.run --verbose``, on a fresh SQLite file
in a temporary folder, with ``TF_CPP_MIN_LOG_LEVEL=3`` (as a run sets it unless asked). The
studies: the shipped ``mnist`` with ``--quick`` (27 trials of 1 epoch on 2,000 images) and
``mnist-convnet-small`` (``bench_parts.SMALL_CONVNET``) with ``--epochs 2``. A run is
stopped with Ctrl-C once the trial that reported the first epoch has ended.

The moments: the command's start (taken here, just before it starts); each start-up line
the run logs under ``--verbose`` (``search.startup: process PID: WHAT at S s``), timed as
it arrives; the first trial's stored start; the first epoch's report, read from the
database as it is stored (polled every 20 ms, read-only). The fixed cost, as issue 26 defines
it: the first report's moment minus the command's start minus that epoch's own stored
``epoch_seconds[0]``. One TensorFlow start: the median of 3 runs of
``python -c "import tensorflow, keras, optuna"``.

The parts of the time to the first epoch, along the process that reported it: import
(TensorFlow, Keras and Optuna imported), data (loaded), check and build (the builder built
and checked against the data, the paths chosen; in a worker started early, its wait for the
go), workers' start (from there to the first trial's start: the study opened, a unit
claimed), trace or compile (the MLP's programs compiled ahead; the first epoch's time beyond
a steady epoch's), the first epoch (a steady epoch: the trial's second), and the rest (the
trial's model built, its storage writes, its checkpoint).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts import bench_parts  # noqa: E402

STARTUP_LINE = re.compile(r"search\.startup: process (\d+): (.+) at [\d.]+ s$")
PARTS = ["import", "data", "check and build", "workers' start", "trace or compile",
         "first epoch", "rest"]
# A start-up line's moment ends one part: the part before it.
ENDS = {"TensorFlow imported": "import", "data loaded": "data",
        "builder checked and paths chosen": "check and build", "told to go": "check and build",
        }
CASES = {"mlp": ("mnist", ["--quick"]),
         "convnet": (bench_parts.SMALL_CONVNET, ["--epochs", "2"])}


@dataclass
class Run:
    """What one command showed: its lines and the database's moments, in seconds from its
    start."""

    workers: int
    lines: list[tuple[float, str]] = field(default_factory=list)
    first_report: tuple[float, int] | None = None  # (moment, trial id)
    ended: float = 0.0
    returncode: int | None = None
    trials: dict[int, dict] = field(default_factory=dict)  # by trial id

    def line_at(self, pattern: str) -> float | None:
        return next((moment for moment, text in self.lines if pattern in text), None)

    def startup(self) -> dict[int, list[tuple[float, str]]]:
        """Each process's start-up moments, by process id."""
        found: dict[int, list[tuple[float, str]]] = {}
        for moment, text in self.lines:
            match = STARTUP_LINE.search(text)
            if match:
                found.setdefault(int(match[1]), []).append((moment, match[2]))
        return found

    @property
    def first(self) -> dict:
        return self.trials[self.first_report[1]]

    def steady_epoch(self) -> float:
        """An epoch without tracing or compiling: the first trial's second, else the first
        of the next trial its process trained (its graphs or programs reused)."""
        seconds = self.first["epoch_seconds"]
        if len(seconds) > 1:
            return statistics.median(seconds[1:])
        later = [t for t in self.trials.values() if t["owner"] == self.first["owner"]
                 and t["start"] > self.first["start"] and t["epoch_seconds"]]
        return min(later, key=lambda t: t["start"])["epoch_seconds"][0] if later else seconds[0]

    def fixed_cost(self) -> float:
        return self.first_report[0] - self.first["epoch_seconds"][0]

    def parts(self) -> dict[str, float]:
        """The time to the first report, split along the process that made it."""
        reporter = self.first["pid"]
        startup = self.startup()
        moments = [(moment, ENDS[what]) for moment, what in startup.get(reporter, [])
                   if what in ENDS]
        if not startup:  # a run that logs no start-up moments: its lines are all there is
            checked = self.line_at("training path:") or self.line_at("starting ")
            if checked is not None:
                moments.append((checked, "import, data, check and build"))
        moments.append((self.first["start"], "workers' start"))
        parts = dict.fromkeys(PARTS, 0.0)
        previous = 0.0
        for moment, part in sorted(moments):
            parts[part] = parts.get(part, 0.0) + moment - previous
            previous = max(previous, moment)
        first_epoch, steady = self.first["epoch_seconds"][0], self.steady_epoch()
        parts["trace or compile"] += first_epoch - steady
        parts["first epoch"] = steady
        parts["rest"] = self.first_report[0] - previous - first_epoch
        return parts


def tensorflow_start() -> float:
    """The median of 3 plain imports of TensorFlow, Keras and Optuna."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import tensorflow, keras, optuna"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_study(folder: Path, name: str) -> None:
    """The definition (and its builder module) in the run's studies folder."""
    definition = bench_parts.load_definition(name)
    if name == bench_parts.SMALL_CONVNET:
        (folder / f"{name}.toml").write_text(definition.source)
        for module in Path(REPO / (definition.folder or "studies")).glob("*.py"):
            shutil.copy(module, folder)


def _poll(database: Path, run: Run, started: float, process: subprocess.Popen,
          stop_after_first: bool) -> None:
    """Note the first epoch's report as it is stored; with ``stop_after_first``, press
    Ctrl-C once its trial has ended."""
    while process.poll() is None:
        time.sleep(0.02)
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
                if run.first_report is None:
                    row = db.execute("SELECT trial_id FROM trial_intermediate_values ORDER BY "
                                     "trial_intermediate_value_id LIMIT 1").fetchone()
                    if row:
                        run.first_report = (time.time() - started, row[0])
                elif stop_after_first:
                    state = db.execute("SELECT state FROM trials WHERE trial_id = ?",
                                       (run.first_report[1],)).fetchone()[0]
                    if state != "RUNNING":
                        os.killpg(process.pid, signal.SIGINT)
                        return
        except sqlite3.Error:  # not made yet, or its tables not yet
            continue


def _stored_trials(database: Path) -> dict[int, dict]:
    import json

    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT trial_id, number, datetime_start FROM trials").fetchall()
        attrs = db.execute("SELECT trial_id, key, value_json FROM trial_user_attributes "
                           "WHERE key = 'epoch_seconds'").fetchall()
        owners = db.execute("SELECT trial_id, value_json FROM trial_system_attributes "
                            "WHERE key = 'owner'").fetchall()
    epochs = {trial: json.loads(value) for trial, _, value in attrs}
    owner = {trial: json.loads(value) for trial, value in owners}
    return {trial: {"number": number, "owner": owner.get(trial, ""),
                    "pid": int(owner.get(trial, "///0").split("/")[2]),
                    "start": datetime.datetime.fromisoformat(start).timestamp(),
                    "epoch_seconds": epochs.get(trial, [])}
            for trial, number, start in rows}


def run_command(repo: Path, name: str, flags: list[str], workers: int, folder: Path,
                data_dir: str, whole: bool = False) -> Run:
    """``python -m search.run --study NAME FLAGS --workers N --verbose`` in ``repo``."""
    write_study(folder, name)
    database = folder / f"{name}-{workers}.db"
    command = [sys.executable, "-m", "search.run", "--study", name, *flags, "--workers",
               str(workers), "--studies-dir", str(folder), "--storage",
               f"sqlite:///{database}", "--data-dir", data_dir, "--verbose"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    run = Run(workers)
    started = time.time()
    process = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    poller = threading.Thread(target=_poll, args=(database, run, started, process, not whole))
    poller.start()
    try:
        for line in process.stderr:
            run.lines.append((time.time() - started, line.rstrip("\n")))
        run.returncode = process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    run.ended = time.time() - started
    poller.join()
    if run.returncode not in (0, 130) or run.first_report is None:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode}):\n" +
                         "\n".join(text for _, text in run.lines[-20:]))
    run.trials = {trial: {**values, "start": values["start"] - started}
                  for trial, values in _stored_trials(database).items()}
    return run


def breakdown(repo: Path, data_dir: str, tf_start: float) -> str:
    rows = []
    for case, (name, flags) in CASES.items():
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                run = run_command(repo, name, flags, workers, Path(folder), data_dir)
            parts = run.parts()
            cells = " | ".join(f"{parts[part]:.1f}" for part in PARTS)
            extra = [f"{part} {seconds:.1f}" for part, seconds in parts.items()
                     if part not in PARTS]
            fixed = run.fixed_cost()
            rows.append(f"| {case} | {workers} | {cells} | **{run.first_report[0]:.1f}** | "
                        f"{fixed:.1f} | {fixed - tf_start:+.1f} |"
                        + (f" ({'; '.join(extra)})" if extra else ""))
            print(rows[-1], flush=True)
    header = (f"| study | workers | {' | '.join(PARTS)} | first epoch reported | fixed cost | "
              "fixed cost − one TensorFlow start |\n|---|---:|" + "---:|" * (len(PARTS) + 3))
    return header + "\n" + "\n".join(rows)


def moments(repo: Path, data_dir: str) -> str:
    """Issue 26's table: the small convnet study whole, 2 workers."""
    with tempfile.TemporaryDirectory() as folder:
        run = run_command(repo, bench_parts.SMALL_CONVNET, [], 2, Path(folder), data_dir,
                          whole=True)
    parent = next(iter(run.startup().values()), [])
    checked = next((moment for moment, what in parent if what == "builder checked and paths "
                    "chosen"), None) or run.line_at("training path:")
    first_start = min(trial["start"] for trial in run.trials.values())
    rows = [("the starting process has imported TensorFlow, loaded the data, built the model "
             "to check it, and chosen its path", checked),
            ("\"starting 2 workers\"", run.line_at("starting 2 workers")),
            ("first trial starts", first_start),
            (f"first epoch reported (its own training: {run.first['epoch_seconds'][0]:.1f} s)",
             run.first_report[0]),
            ("study done (the command exits)", run.ended)]
    return "| moment | seconds from the command's start |\n|---|---:|\n" + "\n".join(
        f"| {what} | {'—' if moment is None else f'{moment:.1f}'} |" for what, moment in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the checkout whose search.run to measure (default: this one)")
    parser.add_argument("--moments", action="store_true",
                        help="also run the small convnet study whole with 2 workers")
    parser.add_argument("--only-moments", action="store_true", help="only that")
    parser.add_argument("--data-dir", default=os.environ.get(
        "MNIST_DATA", str(REPO.parent / "shared" / "mnist")), metavar="DIR")
    args = parser.parse_args()
    print(f"machine: {bench_parts.machine()}; load average {os.getloadavg()[0]:.2f}; "
          f"code: {args.repo}", flush=True)
    if not args.only_moments:
        tf_start = tensorflow_start()
        print(f"one TensorFlow start (median of 3): {tf_start:.2f} s\n", flush=True)
        print(breakdown(args.repo, args.data_dir, tf_start), flush=True)
    if args.moments or args.only_moments:
        print("\n" + moments(args.repo, args.data_dir), flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
