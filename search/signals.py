"""How Ctrl-C and SIGTERM reach a run: as KeyboardInterrupt, held back while a trial's
outcome is written, ignored once the run is already stopping."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a terminated run is recorded like Ctrl-C: resumable


def sigterm_as_interrupt() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)


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
        raise KeyboardInterrupt


def ignore_further_interrupts() -> None:
    """After the first Ctrl-C the run is already stopping: more of them change nothing.

    Without this a second Ctrl-C while TensorFlow shuts down kills the process by signal
    instead of letting it exit 130 with its message.
    """
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
