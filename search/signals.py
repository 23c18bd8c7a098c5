"""How Ctrl-C and SIGTERM reach a run: as one KeyboardInterrupt, held back while a trial's
outcome is written, and never as a traceback, whenever they land.

A command process (``python -m search.run``, ``search.report``, ``search.dashboard``, a
worker) calls ``quiet_start`` before its other imports: until the command is ready for it
a signal is only noted, and the command raises it as soon as it starts
(``interrupts_noted``). From then on the first signal raises KeyboardInterrupt; later ones
are only noted, since the run is already stopping; ``search.cli.run_command`` ends the
process: 130 for a signal that came outside the command's own handling, and no
KeyboardInterrupt at all while the interpreter shuts down.

Python raises a signal's exception wherever the main thread happens to be. Where that is a
finalizer (``__del__``: TensorFlow's objects have them) or a weakref callback (SQLAlchemy's),
Python drops it and reports "Exception ignored in ..."; ``quiet_start``'s hook drops the
report instead and notes the interrupt, and the worker checks the note at safe points
(``raise_if_interrupted``: each epoch's end, each claim): a Ctrl-C is never lost.

Worker processes start with both signals blocked (``blocked_in_children``), so one that
lands while a worker's interpreter starts waits for its ``quiet_start``. Only the moment
before the command's own first line runs (the interpreter's start-up, some 20-30 ms) is
Python's alone.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

# Imported before anything else in a command: whatever it imports lengthens the moment in
# which a Ctrl-C is still Python's own (a traceback). logging, threading and traceback wait.

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Flag:
    """Set by the signal handlers, so without a lock: threading.Event.set takes one, and a
    second signal landing inside the first one's set() waited for it forever."""

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def clear(self) -> None:
        self._value = False

    def is_set(self) -> bool:
        return self._value


_interrupted = _Flag()  # noted only in a command: a library's caller keeps Python's ways
_quiet_process = False  # quiet_start ran: this process is a command, not a library's caller
_commands = 0  # how many interrupts_noted blocks are open (a command runs in this process)


def _in_command() -> bool:
    return _quiet_process or _commands > 0


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _note(signum: int, frame: object) -> None:
    _interrupted.set()


def _on_interrupt(signum: int, frame: object) -> None:
    if _interrupted.is_set():
        return  # the run is already stopping: one KeyboardInterrupt is enough
    _interrupted.set()
    raise KeyboardInterrupt  # a terminated run is recorded like Ctrl-C: resumable


def _unraisable(report: Any) -> None:
    """sys.unraisablehook: a KeyboardInterrupt a finalizer swallowed is noted, not printed;
    what else a finalizer raises once the run is stopping goes to the debug log."""
    if isinstance(report.exc_value, KeyboardInterrupt) or (
            isinstance(report.exc_type, type) and issubclass(report.exc_type, KeyboardInterrupt)):
        _interrupted.set()
        return
    if _interrupted.is_set():
        import logging
        import traceback

        logging.getLogger(__name__).debug(
            "while stopping, %s: %s", report.err_msg or "exception ignored in",
            "".join(traceback.format_exception(report.exc_type, report.exc_value,
                                               report.exc_traceback)).strip())
        return
    sys.__unraisablehook__(report)


def quiet_start() -> None:
    """The first thing a command process does: from here on Ctrl-C and SIGTERM are noted
    (``interrupts_noted`` raises them once the command runs) and never printed as a
    traceback or an "Exception ignored" report."""
    global _quiet_process
    _quiet_process = True
    sys.unraisablehook = _unraisable
    for number in SIGNALS:
        signal.signal(number, _note)
    # A worker starts with them blocked; one that came meanwhile is noted now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


@contextlib.contextmanager
def interrupts_noted() -> Iterator[None]:
    """While a command runs, Ctrl-C and SIGTERM raise KeyboardInterrupt (the first one) and
    are noted; the handlers in force before come back after it. Call
    ``raise_if_interrupted`` first thing inside: one that came during start-up stops it."""
    global _commands
    if not _quiet_process:
        _interrupted.clear()  # a command called from Python starts uninterrupted
    previous = {number: signal.signal(number, _on_interrupt) for number in SIGNALS}
    _commands += 1
    try:
        yield
    finally:
        _commands -= 1
        for number, handler in previous.items():
            signal.signal(number, handler)


def interrupt_noted() -> bool:
    """Whether Ctrl-C or SIGTERM came: an error raised after it may be its doing (a library
    that turns KeyboardInterrupt into an ImportError, say) and ends the run as it would."""
    return _interrupted.is_set()


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if an interrupt came whose exception was dropped."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while a trial's outcome is written, so that neither can
    split the write; one that came meanwhile is raised once the write is done, not lost
    (unless the run was stopping already)."""
    if not _in_main_thread():
        yield
        return
    stopping = _interrupted.is_set()
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum))
                for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received and not stopping:
        if _in_command():
            _interrupted.set()
        raise KeyboardInterrupt


def ignore_further_interrupts() -> None:
    """After the first Ctrl-C the run is already stopping: more of them change nothing.

    Without this a second Ctrl-C while TensorFlow shuts down would raise again in the middle
    of the cleanup, instead of letting the process exit 130 with its message. Called from
    Python (``search.run_study``), outside any command, it changes nothing: the caller's
    own Ctrl-C handling stays as it was.
    """
    if _in_command():
        _interrupted.set()
        if _in_main_thread():
            for number in SIGNALS:
                signal.signal(number, _note)


def ignore_from_now() -> None:
    """The command has ended: from here on Ctrl-C and SIGTERM are ignored. Ignored, not
    noted: while the interpreter shuts down it puts back the default action of every
    signal it handles (a signal then kills the process: exit -2 or -15), but leaves an
    ignored one ignored."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)


@contextlib.contextmanager
def blocked_in_children() -> Iterator[None]:
    """Processes started inside the block start with Ctrl-C and SIGTERM blocked: one that
    lands while their interpreter starts waits for their ``quiet_start`` (it would otherwise
    be a traceback from the middle of an import). This process gets its own as usual."""
    if not _in_main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
