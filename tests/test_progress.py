"""What a run prints while it trains: the ETA waits for every worker's second epoch, and
with several workers each trial's end says its value, the study's progress and the ETA.

The monitor reads a real study in a temporary SQLite file, filled by claims as workers
make them; a clock the test sets stands in for the seconds that pass.
"""

from __future__ import annotations

import pytest

from search import definition
from search.study import claims, lifecycle
from search.worker.eta import Eta
from search.worker.monitor import StudyMonitor

STUDY = """\
[search_space]
learning_rate = [0.001, 0.01]
batch_size = [32, 64]

[training]
epochs = 3
hidden_units = [8]
validation_size = 10
"""


def test_no_eta_until_every_worker_has_ended_its_second_epoch() -> None:
    eta = Eta(workers=2)
    for now in (10.0, 12.0):
        eta.epoch_ended("a", now)
    eta.epoch_ended("b", 11.0)
    assert eta.seconds_left(10, now=13.0) is None  # b has ended one epoch only
    eta.epoch_ended("b", 15.0)
    assert eta.seconds_left(10, now=15.0) is not None


def test_the_pace_leaves_out_each_workers_first_epoch() -> None:
    eta = Eta(workers=2)
    # Each worker's first epoch took 60 s (compiling); then one epoch every 2 s.
    for worker in ("a", "b"):
        for now in (60.0, 62.0, 64.0):
            eta.epoch_ended(worker, now)
    # Two workers at 1 epoch / 2 s each: 1 epoch a second, 30 epochs in 30 s.
    assert eta.seconds_left(30, now=64.0) == pytest.approx(30.0)
    assert Eta(workers=1).seconds_left(5, now=1.0) is None


def test_a_worker_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Eta(workers=0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_several_workers_print_each_trials_end_with_value_progress_and_eta(
        storage, capsys: pytest.CaptureFixture[str]) -> None:
    study = lifecycle.open_study(storage, definition.parse(STUDY, "watched", "watched.toml"))
    clock = Clock()
    monitor = StudyMonitor(study, show=True, on_trial_end=None, workers=2, clock=clock)
    # Two workers on another machine (their liveness is their heartbeat, fresh here).
    first = claims.claim(study, storage, "elsewhere/boot/1/1").trial
    second = claims.claim(study, storage, "elsewhere/boot/2/1").trial
    for epoch, trial in ((1, first), (1, second), (2, first)):
        clock.now += 10.0
        trial.report(0.5 + epoch / 10, step=epoch)
        monitor.poll()
    study.tell(first, 0.75)  # ended after two epochs: worker b has ended only one
    monitor.poll()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"trial #{first.number} ") and lines[0].endswith("started")
    assert any(line.startswith(f"  #{second.number} epoch 1/3 val_accuracy 0.6000")
               for line in lines)
    assert lines[-1].endswith("ended, val_accuracy 0.7500 [1 of 4 trials complete, "
                              "elapsed 30s]")
    clock.now += 10.0
    second.report(0.7, step=2)  # now every worker has ended its second epoch
    study.tell(second, 0.7)
    monitor.poll()
    ended = capsys.readouterr().err.splitlines()[-1]
    assert "val_accuracy 0.7000 [2 of 4 trials complete, elapsed 40s, ETA " in ended
    # Worker a: 1 epoch in the 30 s after its first; b: 1 in 20 s. 6 epochs left.
    assert ended.endswith("ETA " + "1m12s]")
