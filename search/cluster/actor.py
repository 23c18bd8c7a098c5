"""One worker slot on a node: the Ray actor that runs today's worker process there.

The actor starts ``python -m search.worker`` (``search.worker.pool.worker_command``) and
gives it the run's options as JSON on its standard input, exactly as ``--workers N`` does on
one machine; the worker claims units from the study's database, trains, checkpoints to the
artifact store and exits when the study is done. The actor only reports when it has ended
and passes on an interrupt. The worker dies with the actor (``PR_SET_PDEATHSIG``): an actor
Ray kills, or one lost with its node, leaves no worker behind that still holds a claim.

The worker's environment is the node's (credentials come from there), with TensorFlow's
thread pools sized to the CPUs the actor asked for (set before TensorFlow starts; its
``TF_NUM_*`` variables, not only ``OMP_NUM_THREADS``), GPU memory growth on, and the GPUs
Ray gave the actor (``CUDA_VISIBLE_DEVICES``, as Ray sets it) the only ones it sees.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping

from search.cluster.package import on_this_node
from search.options import RunOptions
from search.worker.pool import GO, worker_command, worker_input

_PR_SET_PDEATHSIG = 1
try:  # looked up here, not in the child between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _prctl = None


def _as_a_worker() -> None:
    """In the worker process, before it runs: signals as in a process started from a shell
    (Ray's worker blocks SIGINT, and a child inherits that: Ctrl-C would never arrive), and
    SIGKILL when the actor's process ends."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def worker_environment(environment: Mapping[str, str], threads: int) -> dict[str, str]:
    """The node's environment with the worker's thread counts and GPU settings."""
    return {**environment,
            "TF_NUM_INTRAOP_THREADS": str(threads),
            "TF_NUM_INTEROP_THREADS": str(max(1, min(2, threads))),  # as configure_threads
            "OMP_NUM_THREADS": str(threads),
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            "PYTHONUNBUFFERED": "1"}  # its lines reach the driver as they are written


class ClusterWorker:
    """The actor's body; ``search.cluster.supervise`` makes it a Ray actor of the run's
    CPUs and GPUs. Its methods are quick, so they run one at a time in the actor's main
    thread (the thread whose end would otherwise kill the worker, see ``prctl(2)``)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def start(self, options_json: str, study_file: str | None) -> dict[str, str]:
        """Start the worker; where it runs (node, host, process id)."""
        import ray

        options = on_this_node(RunOptions.from_json(options_json), study_file)
        self.process = subprocess.Popen(
            worker_command(), stdin=subprocess.PIPE, text=True,
            env=worker_environment(os.environ, options.threads),
            preexec_fn=_as_a_worker)
        # Its options, then the go at once: the command checked and stored the study first.
        self.process.stdin.write(worker_input(options) + GO + "\n")
        self.process.stdin.close()
        return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": str(self.process.pid)}

    def poll(self, seconds: float) -> int | None:
        """The worker's exit code once it has ended, waiting up to ``seconds``; else None."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def interrupt(self, seconds: float) -> int:
        """Ctrl-C for the worker (it marks its trial interrupted, resumable); killed if it has
        not ended within ``seconds``. Its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
