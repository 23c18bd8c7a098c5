"""Joining the Ray cluster, before anything is stored: what cannot work there is one line.

Refused: Ray not installed; no cluster at the address (Ray itself would retry for minutes);
a SQLite file or an artifact folder when the cluster has more than one node (the others
cannot reach them); a worker bigger than every node (more GPUs or CPU threads than any
has: Ray would wait for such a node for ever).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from search.cluster.package import study_package
from search.definition import StudyDefinition
from search.errors import SearchError
from search.options import CLUSTER_AUTO, RunOptions
from search.study import artifact_store
from search.study.storage import display, parse_url

INSTALL = 'pip install "keras-optuna-search[ray]"'
CONNECT_SECONDS = 5.0
_connected = False  # whether this process's connection to Ray is one a run made


def import_ray() -> Any:
    """Ray, or the one line that says how to install it."""
    try:
        import ray
    except ImportError:
        raise SearchError(f"--cluster ray needs Ray, which is not installed here: {INSTALL}"
                          ) from None
    return ray


def _address() -> str:
    """host:port of the cluster, found as ``ray.init(address="auto")`` finds it: $RAY_ADDRESS,
    else the cluster this machine's ``ray start`` joined."""
    try:  # Ray's own lookup, public only inside ray.init
        from ray._private.services import canonicalize_bootstrap_address_or_die as lookup
    except ImportError:  # moved in another Ray: $RAY_ADDRESS alone
        lookup = None
    given = os.environ.get("RAY_ADDRESS", "")
    if "://" in given:
        raise SearchError(f"RAY_ADDRESS={given} is a Ray Client address, which --cluster does "
                          "not take: give the head's HOST:PORT (its GCS port, 6379 by default)")
    if lookup is None and given:
        return given
    try:
        if lookup is None:
            raise ConnectionError("$RAY_ADDRESS is not set")
        return lookup("auto")
    except (ConnectionError, ValueError) as error:
        raise SearchError(f"no Ray cluster found ({str(error).split('. ')[0]}): start one with "
                          "'ray start', or set RAY_ADDRESS=HOST:PORT") from None


def _answers(address: str) -> None:
    """A quick look before ``ray.init``, which retries an address that does not answer for
    minutes."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_SECONDS):
            pass
    except (OSError, ValueError) as error:
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise SearchError(f"no Ray cluster answers at {address} ({why}); start it, or set "
                          "RAY_ADDRESS to its head's HOST:PORT") from None


def connect(ray: Any, definition: StudyDefinition) -> str:
    """Connect this process to the cluster, with the study's files as the job's
    ``runtime_env`` (Ray uploads a folder only when a job connects); its address."""
    global _connected
    if ray.is_initialized():
        if not _connected:
            raise SearchError("this process is connected to Ray already; --cluster connects "
                              "itself, to send the study's files: call ray.shutdown() first")
        ray.shutdown()  # a run's connection carries its own study's files
    address = _address()
    _answers(address)
    # The workers' lines come through Ray, prefixed with their actor: no colour codes in
    # a log file.
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    in_main = threading.current_thread() is threading.main_thread()
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with study_package(definition) as runtime_env:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        _connected = True
    except (RuntimeError, ConnectionError, ValueError) as error:  # e.g. another Ray version
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise SearchError(f"cannot join the Ray cluster at {address}: {first}") from None
    finally:
        if in_main:  # ray.init makes SIGTERM exit at once; the run stops its workers first
            for number, handler in saved.items():
                signal.signal(number, handler)
    return address


def _refuse_unreachable(options: RunOptions, nodes: int) -> None:
    if nodes < 2:
        return
    others = f"the other {nodes - 1} node(s) of the Ray cluster"
    url = parse_url(options.storage_url)
    if url.get_backend_name() == "sqlite":
        raise SearchError(f"storage {display(options.storage_url)} is a SQLite file, which "
                          f"{others} cannot reach; use PostgreSQL (--storage or "
                          "$OPTUNA_STORAGE)")
    location = options.locations.artifacts
    if artifact_store.parse(location).folder is not None:
        raise SearchError(f"artifact store {location} is a folder, which {others} may not "
                          "reach; name an S3 store (--artifacts s3://bucket/prefix or "
                          "$SEARCH_ARTIFACTS)")


def _refuse_too_big(options: RunOptions, resources: list[dict[str, float]]) -> None:
    for name, asked, flag in (("GPU", options.gpus_per_worker, "--gpus-per-worker"),
                              ("CPU", options.threads, "--threads")):
        most = max((node.get(name, 0.0) for node in resources), default=0.0)
        if asked > most:
            raise SearchError(f"{flag} {asked:g}: no node of the Ray cluster has {asked:g} "
                              f"{name}s (the most any has is {most:g})")


def _auto_workers(ray: Any, options: RunOptions) -> int:
    """--workers auto: as many workers as the cluster's free CPUs (and GPUs) hold now."""
    free = ray.available_resources()
    fits = free.get("CPU", 0.0) // options.threads
    if options.gpus_per_worker:
        fits = min(fits, free.get("GPU", 0.0) // options.gpus_per_worker)
    if fits < 1:
        raise SearchError(f"--workers auto: the Ray cluster has no room free now for a worker "
                          f"of {options.threads} CPU(s) ({free.get('CPU', 0.0):g} CPUs free); "
                          "pass --workers N to wait for busy ones")
    return int(fits)


def join(options: RunOptions) -> RunOptions:
    """Connect to the cluster and check the run fits it; the options to run with there."""
    ray = import_ray()
    address = connect(ray, options.definition)
    nodes = [node for node in ray.nodes() if node["Alive"]]
    resources = [node["Resources"] for node in nodes]
    _refuse_unreachable(options, len(nodes))
    _refuse_too_big(options, resources)
    workers = _auto_workers(ray, options) if options.workers == CLUSTER_AUTO \
        else options.workers
    if options.show_progress:
        total = {name: sum(node.get(name, 0.0) for node in resources) for name in ("CPU", "GPU")}
        print(f"joined the Ray cluster at {address}: {len(nodes)} node(s), "
              f"{total['CPU']:g} CPUs, {total['GPU']:g} GPUs", file=sys.stderr)
    # Every node reads the data folder at the same path; relative, it would be read from
    # the folder Ray runs the worker in.
    data_dir = None if options.data_dir is None else str(Path(options.data_dir).resolve())
    return dataclasses.replace(options, workers=workers, data_dir=data_dir)
