"""The command's side of ``--cluster ray``: one Ray actor per worker slot, the study's
progress read from its database, a lost actor replaced, every actor stopped at the end.

Claims decide which worker runs which unit, never Ray. Actors are made with
``max_restarts=0`` and their calls with ``max_task_retries=0``, so Ray neither restarts nor
retries anything; an actor lost with its node is replaced here by a new one, up to
``max_attempts`` times per slot, whose worker claims like any other. The lost worker's trial
is failed by the claim rules (at once when its process can be looked up, else once its
heartbeat has been silent for the grace period) and its unit continues from its last
checkpoint on whichever worker claims it next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import optuna

from search.cluster.joining import import_ray
from search.cluster.package import study_file_name, without_password
from search.errors import Interrupted
from search.options import RunOptions
from search.signals import ignore_further_interrupts, raise_if_interrupted
from search.study import points, stages, units
from search.worker.monitor import WATCH_SECONDS, StudyMonitor

POLL_SECONDS = 1.0  # how long one poll() waits on its node for the worker to end
STOP_SECONDS = 60.0  # how long an interrupted worker may take to record its trial
LOST = -1  # the exit code of a slot whose actors were all lost


@dataclasses.dataclass
class _Slot:
    number: int
    actor: Any = None
    started: Any = None  # start()'s reply: where the worker runs, once the actor is placed
    waiting: Any = None  # the pending poll(); None once the slot has ended
    where: str = ""
    losses: int = 0
    code: int | None = None
    failure: str | None = None


class _Launcher:
    """Makes a slot's actor and starts its worker."""

    def __init__(self, ray: Any, options: RunOptions) -> None:
        from search.cluster.actor import ClusterWorker

        # The job's runtime_env (search.cluster.joining) brings the study's files.
        self.actor_class = ray.remote(ClusterWorker).options(
            num_cpus=options.threads, num_gpus=options.gpus_per_worker, max_restarts=0,
            max_task_retries=0)
        self.options_json = without_password(options).to_json()
        self.study_file = study_file_name(options.definition)

    def start(self, slot: _Slot) -> None:
        slot.actor = self.actor_class.remote()
        slot.started = slot.actor.start.remote(self.options_json, self.study_file)
        slot.waiting = slot.actor.poll.remote(POLL_SECONDS)
        slot.where = ""


def _say(options: RunOptions, text: str) -> None:
    if options.show_progress:
        print(text, file=sys.stderr)


def _unfinished(study: optuna.Study) -> bool:
    return any(state in points.UNFINISHED for state in units.states(study))


def _one_line(ray: Any, error: BaseException) -> str:
    cause = getattr(error, "cause", None) if isinstance(error, ray.exceptions.RayTaskError) \
        else None
    shown = cause or error
    return (f"{type(shown).__name__}: {shown}".splitlines() or [""])[0][:300]


def _first_error(ray: Any, slot: _Slot, error: BaseException) -> BaseException:
    """start()'s error if it failed (every later call fails for that reason), else
    ``error``."""
    try:
        ray.get(slot.started)
    except ray.exceptions.RayError as first:
        return first
    return error


def _ended(ray: Any, slot: _Slot, code: int, failure: str | None = None) -> None:
    slot.code, slot.waiting = code, None
    slot.failure = failure or (f"worker {slot.number} exited with {code}"
                               if code not in (0, 130) else None)
    with contextlib.suppress(Exception):
        ray.kill(slot.actor, no_restart=True)


def _placed(ray: Any, slots: list[_Slot], options: RunOptions) -> None:
    """Say where each newly placed worker runs."""
    for slot in slots:
        if slot.waiting is None or slot.where or not ray.wait([slot.started], timeout=0)[0]:
            continue
        try:
            where = ray.get(slot.started)
        except ray.exceptions.RayActorError:
            continue  # lost: its poll says so
        except ray.exceptions.RayError as error:
            _ended(ray, slot, 1, f"worker {slot.number} could not start: "
                                 f"{_one_line(ray, error)}")
            continue
        slot.where = f"node {where['node'][:8]} ({where['host']}, process {where['pid']})"
        _say(options, f"worker {slot.number} runs on {slot.where}")


def _lost(ray: Any, slot: _Slot, launcher: _Launcher, study: optuna.Study,
          options: RunOptions) -> None:
    """Replace a slot's lost actor, unless the study needs no more workers or the slot has
    used up its replacements."""
    slot.losses += 1
    limit, where = options.definition.max_attempts, slot.where or "its node"
    if not _unfinished(study):
        _ended(ray, slot, 0)
    elif slot.losses > limit:
        _ended(ray, slot, LOST, f"worker {slot.number} was lost {slot.losses} times, the "
                                f"last on {where}; not replaced again")
    else:
        _say(options, f"worker {slot.number} on {where} was lost with its actor; starting "
                      f"another ({slot.losses} of {limit})")
        launcher.start(slot)


def _round(ray: Any, slots: list[_Slot], launcher: _Launcher, study: optuna.Study,
           options: RunOptions) -> None:
    """Wait up to a moment for the slots' polls; act on those that answered."""
    waiting = {slot.waiting: slot for slot in slots if slot.waiting is not None}
    ready, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=WATCH_SECONDS)
    for reply in ready:
        slot = waiting[reply]
        try:
            code = ray.get(reply)
        except ray.exceptions.RayActorError:
            _lost(ray, slot, launcher, study, options)
        except ray.exceptions.RayError as error:
            _ended(ray, slot, 1, f"worker {slot.number} failed: "
                                 f"{_one_line(ray, _first_error(ray, slot, error))}")
        else:
            if code is None:
                slot.waiting = slot.actor.poll.remote(POLL_SECONDS)
            else:
                _ended(ray, slot, code)
    unplaced = [slot for slot in slots if slot.waiting is not None and not slot.where]
    if unplaced and not _unfinished(study):
        for slot in unplaced:  # still waiting for room on the cluster, and nothing to do
            _ended(ray, slot, 0)


def _stop(ray: Any, slots: list[_Slot]) -> None:
    """Interrupt every worker still running (it marks its trial interrupted, resumable),
    then kill every actor: none is left running."""
    running = [slot for slot in slots if slot.waiting is not None
               and ray.wait([slot.started], timeout=0)[0]]
    replies = {slot.actor.interrupt.remote(STOP_SECONDS): slot for slot in running}
    ready = ray.wait(list(replies), num_returns=len(replies),
                     timeout=STOP_SECONDS + 5)[0] if replies else []
    for reply in ready:
        with contextlib.suppress(ray.exceptions.RayError):
            replies[reply].code = ray.get(reply)
    for slot in slots:
        if slot.actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
        if slot.waiting is not None:
            slot.waiting, slot.code = None, 130 if slot.code is None else slot.code


def _watch(ray: Any, slots: list[_Slot], launcher: _Launcher, study: optuna.Study,
           options: RunOptions,
           on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None) -> None:
    statuses = units.unit_status(study)
    left = stages.planned(study, statuses) - sum(s.complete is not None for s in statuses)
    monitor = StudyMonitor(study, options.show_progress, on_trial_end,
                           workers=max(1, min(options.workers, left)))
    while any(slot.waiting is not None for slot in slots):
        raise_if_interrupted()
        monitor.poll()
        _placed(ray, slots, options)
        _round(ray, slots, launcher, study, options)
    monitor.poll()


def work_on_cluster(options: RunOptions, study: optuna.Study,
                    on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None
                    ) -> list[str]:
    """Run the study's workers as actors on the joined cluster, watch the study until they
    have ended; ``on_trial_end`` hears of each trial that ended. Returns a line for each
    worker slot that failed; raises Interrupted if the run was, once every actor stopped."""
    ray = import_ray()
    gpus = f" and {options.gpus_per_worker:g} GPU(s)" if options.gpus_per_worker else ""
    _say(options, f"starting {options.workers} workers on the Ray cluster with "
                  f"{options.threads} CPU thread(s){gpus} each")
    slots = [_Slot(number + 1) for number in range(options.workers)]
    interrupted = False
    launcher = _Launcher(ray, options)
    try:
        for slot in slots:
            launcher.start(slot)
        _watch(ray, slots, launcher, study, options, on_trial_end)
    except KeyboardInterrupt:
        ignore_further_interrupts()
        interrupted = True
    finally:
        _stop(ray, slots)
    if interrupted or 130 in [slot.code for slot in slots]:
        raise Interrupted()
    return [slot.failure for slot in slots if slot.failure]
