"""Sampled studies trained for real, through the command: a TPE study killed mid-trial and
rerun gives exactly its search trials and confirm runs, each once, the killed units resumed
with their configurations; a random study samples the same configurations with one worker
and with two."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.helpers import run_to_end, running_after_epoch, start_run, trials, wait_for

pytestmark = pytest.mark.slow

STUDY = """\
[search_space]
learning_rate = {{low = 0.0003, high = 0.03, log = true}}
batch_size = [64, 128]

[search]
sampler = "{sampler}"
trials = {trials}
confirm = {confirm}
{options}

[training]
epochs = {epochs}
hidden_units = [16, 8]
train_size = {train_size}
validation_size = 500
repeats = 2
"""


def write(folder: Path, name: str, **values) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(STUDY.format(**values))
    return folder


def by_stage(name: str, url: str, stage: str):
    return [t for t in trials(name, url) if t.user_attrs.get("stage") == stage]


def test_a_killed_tpe_study_reruns_to_exactly_its_trials_and_confirm_runs(tmp_path, mnist_dir):
    # Epochs long enough (20,000 images) that a trial seen running is still running when
    # the run is killed a moment later.
    studies = write(tmp_path / "studies", "tpe", sampler="tpe", trials=4, confirm=1,
                    options="sampler_options = {n_startup_trials = 2}", epochs=2,
                    train_size=20_000)
    url = f"sqlite:///{tmp_path}/tpe.db"
    run = start_run("tpe", url, studies, "--workers", "2", data_dir=mnist_dir)
    victim = wait_for(running_after_epoch("tpe", url, 1), run)
    os.killpg(run.pid, signal.SIGKILL)  # the run and both its workers, mid-trial
    run.wait()

    rerun = run_to_end("tpe", url, studies, "--workers", "2", data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    search = by_stage("tpe", url, "search")
    complete = [t for t in search if t.state == TrialState.COMPLETE]
    assert sorted(t.system_attrs["unit"][0] for t in complete) == [0, 1, 2, 3]
    assert not [t for t in trials("tpe", url) if t.state == TrialState.RUNNING]
    unit = victim.system_attrs["unit"][0]
    resumed = next(t for t in complete if t.system_attrs["unit"][0] == unit)
    assert resumed.params == victim.params  # the configuration stayed with its unit
    assert resumed.user_attrs["resumed_from_epoch"] >= 1  # from its checkpoint
    confirm = [t for t in by_stage("tpe", url, "confirm") if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["replicate"] for t in confirm) == [0, 1]
    best = min(complete, key=lambda t: -t.value)
    assert all(t.params == best.params for t in confirm)
    assert "search 4 of 4 trials ended" in rerun.stdout


def test_a_random_study_samples_the_same_configurations_with_one_and_two_workers(
        tmp_path, mnist_dir):
    found = []
    for workers in ("1", "2"):
        studies = write(tmp_path / workers, "random", sampler="random", trials=4, confirm=0,
                        options="seed = 3", epochs=1, train_size=1000)
        url = f"sqlite:///{tmp_path}/{workers}.db"
        result = run_to_end("random", url, studies, "--workers", workers, data_dir=mnist_dir)
        assert result.returncode == 0, result.stderr
        found.append({t.system_attrs["unit"][0]: json.dumps(t.params, sort_keys=True)
                      for t in by_stage("random", url, "search")
                      if t.state == TrialState.COMPLETE})
    assert found[0] == found[1] and len(found[0]) == 4
