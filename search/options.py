"""Everything a run needs, as one plain, serialisable object.

The command line turns flags into ``RunOptions``; ``search.run_study`` takes plain values and
builds the same object; worker processes receive it whole, as JSON on their standard input,
so a new setting is one field here and nothing travels on a command line (where ``ps``
would show a database password to every user of the machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from search import cpu_quota
from search.definition import StudyDefinition
from search.errors import SearchError
from search.locations import Locations, locate
from search.search_section import SearchPlan

QUICK_TRAIN_SIZE = 2000
CLUSTERS = ("ray",)  # --cluster: the engines a run's workers can be placed by
# --workers auto on a cluster: decided once the cluster is joined (search.cluster), from
# its free CPUs; no run starts with it.
CLUSTER_AUTO = 0


@dataclasses.dataclass(frozen=True)
class RunOptions:
    definition: StudyDefinition  # with --quick, --epochs and --repeats applied
    locations: Locations
    data_dir: str | None = None
    workers: int = 1
    threads: int = 1  # CPU threads per worker
    fresh: bool = False
    retry_failed: bool = False
    show_progress: bool = True
    cluster: str | None = None  # "ray": the workers run as actors on the Ray cluster
    gpus_per_worker: float = 0  # with a cluster: the GPUs each worker asks for

    @property
    def storage_url(self) -> str:
        return self.locations.storage_url

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        fields["locations"] = self.locations.to_dict()
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> RunOptions:
        fields = json.loads(text)
        definition = fields["definition"]
        fields["definition"] = StudyDefinition(**{**definition,
                                                  "search": SearchPlan(**definition["search"])})
        fields["locations"] = Locations.from_dict(fields["locations"])
        return cls(**fields)


def _cpu_times() -> tuple[int, int]:
    """(idle, total) clock ticks of every CPU since boot, from /proc/stat."""
    values = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values[:8])  # idle + iowait; user .. steal


def auto_workers(sample_seconds: float = 0.3) -> int:
    """Worker processes for ``--workers auto``: one per core that other programs leave idle.

    The cores counted are those the process may use: its affinity, cut to a container's CPU
    quota (``search.cpu_quota``). One worker trains on one core; a second worker on a free
    second core finishes a study well ahead of one, but on a core another program keeps busy
    it only fights that program (and takes from one worker the spare core it compiles ahead
    on). Idleness is measured now, over a moment: the load average trails a program that
    has just ended by minutes.
    """
    cores = cpu_quota.usable_cpus()
    try:
        idle_before, total_before = _cpu_times()
        time.sleep(sample_seconds)
        idle_after, total_after = _cpu_times()
        idle = cores * (idle_after - idle_before) / max(1, total_after - total_before)
    except (OSError, ValueError, IndexError):  # no /proc: fall back to the load average
        idle = cores - os.getloadavg()[0]
    return max(1, min(cores, round(idle)))


def _positive(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise SearchError(f"{name} must be a positive whole number, not {value!r}")
    if value <= 0:
        raise SearchError(f"{name} must be positive, not {value}")


def effective_definition(definition: StudyDefinition, *, epochs: int | None = None,
                         quick: bool = False, repeats: int | None = None) -> StudyDefinition:
    """The definition a run uses: --quick and --epochs make studies of their own names
    (their trials differ); --repeats only grows the same study."""
    _positive("--epochs", epochs)
    _positive("--repeats", repeats)
    if quick and epochs is not None:
        raise SearchError("--quick trains 1 epoch; leave out --epochs, or --quick")
    if quick:
        train_size = min(QUICK_TRAIN_SIZE, definition.train_size or QUICK_TRAIN_SIZE)
        definition = definition.with_overrides(epochs=1, train_size=train_size,
                                               name_suffix="-quick")
    elif epochs is not None and epochs != definition.epochs:
        definition = definition.with_overrides(epochs=epochs, name_suffix=f"-epochs{epochs}")
    return definition.with_overrides(repeats=repeats)


def make_options(definition: StudyDefinition, *, storage_url: str | None = None,
                 studies_dir: Path | None = None, artifacts: str | None = None,
                 data_dir: str | None = None,
                 workers: int | str = 1, threads: int | None = None,
                 epochs: int | None = None,
                 quick: bool = False, repeats: int | None = None, fresh: bool = False,
                 retry_failed: bool = False, show_progress: bool = True,
                 cluster: str | None = None, gpus_per_worker: float | None = None
                 ) -> RunOptions:
    """Check plain values and build the options; bad ones raise a one-line SearchError.

    ``workers="auto"`` picks one worker per idle core (``auto_workers``); on a ``cluster``
    the cluster's free CPUs decide, once it is joined.
    """
    cluster = None if cluster in ("", "none") else cluster  # "none": not $SEARCH_CLUSTER's
    _cluster_settings(cluster, gpus_per_worker)
    if workers == "auto":
        workers = CLUSTER_AUTO if cluster else auto_workers()
    elif not isinstance(workers, int):
        raise SearchError(f"--workers must be a positive number or 'auto', not {workers!r}")
    else:
        _positive("--workers", workers)
    _positive("--threads", threads)
    effective = effective_definition(definition, epochs=epochs, quick=quick, repeats=repeats)
    # One thread per worker. XLA hardly splits this MLP's small matrix products, and N
    # single-thread workers on N cores do not oversubscribe them; the spare core compiles.
    return RunOptions(definition=effective,
                      locations=locate(effective, storage_url, studies_dir, artifacts),
                      data_dir=None if data_dir is None
                      else str(data_dir), workers=workers, threads=threads or 1,
                      fresh=fresh, retry_failed=retry_failed, show_progress=show_progress,
                      cluster=cluster, gpus_per_worker=gpus_per_worker or 0)


def _cluster_settings(cluster: str | None, gpus_per_worker: float | None) -> None:
    if cluster and cluster not in CLUSTERS:
        raise SearchError(f"--cluster takes {' or '.join(CLUSTERS)} (the Ray cluster this "
                          "machine belongs to, or the one $RAY_ADDRESS names) or none, not "
                          f"{cluster!r}")
    if gpus_per_worker is None:
        return
    if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, int | float) \
            or not gpus_per_worker > 0:
        raise SearchError(f"--gpus-per-worker must be a positive number, not {gpus_per_worker!r}")
    if not cluster:
        raise SearchError("--gpus-per-worker places workers on a cluster's GPUs: add "
                          "--cluster ray (on one machine, TensorFlow uses its GPU by itself)")
