"""How Ctrl-C and SIGTERM reach a run: as KeyboardInterrupt, held back while a trial's
outcome is written, ignored once the run is already stopping.

Python raises a signal's exception wherever the main thread happens to be, and where that
is a finalizer (``__del__``: TensorFlow's objects have them) the exception is printed and
dropped. So the commands also note the interrupt, and the worker checks the note at safe
points (``raise_if_interrupted``: each epoch's end, each claim): a Ctrl-C is never lost.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_interrupted = threading.Event()


def _on_interrupt(signum: int, frame: object) -> None:
    _interrupted.set()
    raise KeyboardInterrupt  # a terminated run is recorded like Ctrl-C: resumable


@contextlib.contextmanager
def interrupts_noted() -> Iterator[None]:
    """While a command runs, Ctrl-C and SIGTERM raise KeyboardInterrupt and are noted."""
    _interrupted.clear()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _on_interrupt)
    try:
        yield
    finally:
        _interrupted.clear()  # the next run in this process starts uninterrupted


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if an interrupt came whose exception was dropped."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while a trial's outcome is written, so that neither can
    split the write; one that came meanwhile is raised once the write is done, not lost."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        _interrupted.set()
        raise KeyboardInterrupt


def ignore_further_interrupts() -> None:
    """After the first Ctrl-C the run is already stopping: more of them change nothing.

    Without this a second Ctrl-C while TensorFlow shuts down kills the process by signal
    instead of letting it exit 130 with its message.
    """
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
