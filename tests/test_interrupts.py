"""Ctrl-C and SIGTERM at any moment of a two-worker run: exit 130, no traceback and no
"Exception ignored" report on the terminal, no process left, the interrupted trial's
checkpoint kept, and the rerun finishes every unit exactly once.

One study takes all the rounds. Six are stopped at random moments spread over the run's
first seconds (the command's imports, opening the study, the workers starting), two a
random moment after a trial has started (training, checkpoints, outcomes being written);
the rounds' progress adds up, and the rerun finishes what is left.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import write_definition
from tests.helpers import run_to_end, start_run, trials

pytestmark = pytest.mark.slow

ROUNDS, TRAINING_ROUNDS = 8, 2  # of which 2 strike once a trial has started
FIRST, LAST = 0.3, 3.5  # the other rounds' moments: seconds after the start
RATES, SIZES = (0.001, 0.003, 0.01), (64,)  # one batch size: one program to compile


def alive_in_group(group: int) -> list[int]:
    """Processes of the process group that have not exited (zombies aside)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(process_group) == group and state != "Z":
            alive.append(int(stat.parent.name))
    return alive


def checkpoint_epoch(studies: Path, trial) -> int | None:
    """The epoch of the checkpoint kept for the trial's unit, if one is."""
    unit = (f"learning_rate={trial.params['learning_rate']},"
            f"batch_size={trial.params['batch_size']},"
            f"replicate={trial.user_attrs['replicate']}")
    pointer = studies / "tiny.artifacts" / "checkpoints" / "tiny" / unit / "latest.json"
    return json.loads(pointer.read_text())["epoch"] if pointer.exists() else None


def complete_units(url: str) -> list[tuple]:
    return sorted((t.params["learning_rate"], t.params["batch_size"], t.user_attrs["replicate"])
                  for t in trials("tiny", url) if t.state == TrialState.COMPLETE)


def interrupt(process, delay: float | None, number: signal.Signals, whole_group: bool,
              draw: random.Random) -> tuple[str, str]:
    """Signal the run ``delay`` s after its start, or (None) a moment after its first trial
    starts; wait for it to end. (When it struck, what the run wrote on stderr.)"""
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if line.startswith("trial #"):  # the progress view saw a trial start
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if delay is None:
        assert started.wait(120), "no trial started: " + "".join(lines)
        delay = draw.uniform(0, 1.5)
        when = f"{delay:.2f} s after a trial started"
    else:
        when = f"{delay:.2f} s after the start"
    time.sleep(delay)
    if whole_group:  # a terminal's Ctrl-C: the run and its workers
        os.killpg(process.pid, number)
    else:  # kill PID: the run alone, which passes it on
        process.send_signal(number)
    process.wait(timeout=120)
    reader.join(timeout=30)
    process.stdout.read()
    return f"{number.name} {when}", "".join(lines)


def test_ctrl_c_or_sigterm_at_any_moment_is_quiet_and_resumable(tmp_path: Path, mnist_dir):
    studies, url = tmp_path / "studies", f"sqlite:///{tmp_path}/tiny.db"
    write_definition(studies, "tiny", learning_rates=RATES, batch_sizes=SIZES, epochs=3,
                     train_size=1000, validation_size=500)
    draw = random.Random()
    delays = [FIRST + (index + draw.random()) * (LAST - FIRST) / (ROUNDS - TRAINING_ROUNDS)
              for index in range(ROUNDS - TRAINING_ROUNDS)] + [None] * TRAINING_ROUNDS
    signals = [(signal.SIGINT, True)] * (ROUNDS - 2) + [(signal.SIGTERM, False)] * 2
    draw.shuffle(delays)
    draw.shuffle(signals)
    repeats, seen = 1, set()
    for delay, (number, whole_group) in zip(delays, signals, strict=True):
        if len(complete_units(url)) == len(RATES) * len(SIZES) * repeats:
            repeats += 1  # a round must find work to interrupt: the study grows
        process = start_run("tiny", url, studies, "--workers", "2", "--repeats", str(repeats),
                            data_dir=mnist_dir)
        when, stderr = interrupt(process, delay, number, whole_group, draw)
        said = f"{when}: {stderr[-3000:]}"
        assert process.returncode == 130, said
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, said
        deadline = time.monotonic() + 10
        while alive_in_group(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive_in_group(process.pid) == [], said
        for trial in trials("tiny", url):  # what this round interrupted kept its checkpoint
            if trial.number in seen or trial.state != TrialState.FAIL:
                continue
            seen.add(trial.number)
            done = re.match(r"interrupted after epoch (\d+)", trial.user_attrs["failure"])
            if done and int(done.group(1)) > 0:
                assert (checkpoint_epoch(studies, trial) or 0) >= int(done.group(1)), said

    rerun = run_to_end("tiny", url, studies, "--workers", "2", "--repeats", str(repeats),
                       data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    every = trials("tiny", url)
    assert not [t.number for t in every if t.state == TrialState.RUNNING]
    assert complete_units(url) == sorted((rate, size, replicate) for rate in RATES
                                         for size in SIZES for replicate in range(repeats))
    assert all(t.user_attrs["failure"].startswith("interrupted")
               for t in every if t.state == TrialState.FAIL)
