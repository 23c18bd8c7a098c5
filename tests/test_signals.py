"""Ctrl-C's ways, without a run: noted during a command's start, never printed from a
finalizer, raised once, and left alone for a caller from Python.

What changes a whole process (``quiet_start``) runs in a child interpreter; the slow
``test_interrupts.py`` signals real two-worker runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from search import signals
from tests.conftest import REPO


def _child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_an_interrupt_in_a_finalizer_is_noted_not_printed() -> None:
    done = _child("""
        from search import signals
        signals.quiet_start()

        class Finalized:
            def __del__(self):
                raise KeyboardInterrupt  # where Python would drop a Ctrl-C

        Finalized()
        try:
            signals.raise_if_interrupted()
        except KeyboardInterrupt:
            print("noted")
        """)
    assert (done.returncode, done.stdout, done.stderr) == (0, "noted\n", "")


def test_a_signal_during_start_up_stops_the_command_quietly_with_130() -> None:
    done = _child("""
        import os, signal
        from search import signals
        signals.quiet_start()
        os.kill(os.getpid(), signal.SIGTERM)  # while the command's modules still import
        from search import cli

        def main():
            return cli.handle_signals_and_errors(lambda: print("ran") or 0, verbose=False)

        cli.run_command(main)
        """)
    assert done.returncode == 130
    assert done.stdout == "" and done.stderr.strip() == "interrupted; run the same command " \
        "again to resume"


def test_one_interrupt_raises_once_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    raised = 0
    with signals.interrupts_noted():
        for _ in range(2):
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                raised += 1
    assert raised == 1  # the second came while the run was already stopping
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_a_command_the_callers_handling_is_left_alone() -> None:
    before = signal.getsignal(signal.SIGINT)
    signals.ignore_further_interrupts()  # what a worker loop does after Ctrl-C, from Python
    assert signal.getsignal(signal.SIGINT) is before
    signals.raise_if_interrupted()  # nothing noted: a next run_study is not stopped at once


def test_workers_start_with_the_signals_blocked() -> None:
    with signals.blocked_in_children():
        child = subprocess.Popen(["sleep", "30"])
    try:
        blocked = next(line for line in Path(f"/proc/{child.pid}/status").read_text()
                       .splitlines() if line.startswith("SigBlk:"))
        mask = int(blocked.split()[1], 16)
        assert mask & (1 << (signal.SIGINT - 1)) and mask & (1 << (signal.SIGTERM - 1))
    finally:
        child.kill()
        child.wait()
    own = next(line for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("SigBlk:"))
    assert not int(own.split()[1], 16) & (1 << (signal.SIGINT - 1))  # this one's are not
