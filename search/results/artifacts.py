"""What optuna-dashboard shows of each trial beyond its own plots: the trial's files.

optuna-dashboard draws one series per trial, so a trial's accuracy and loss cannot be seen
together there. Every worker therefore attaches to every finished trial a PNG of its
train/validation accuracy and loss, its history as CSV and its final model as a .keras file
(Optuna artifacts, in the study's artifact store: a folder or an S3 bucket). The study's
own note, with the table and the verdict, is ``search.results.note``'s.
``python -m search.dashboard --study mnist`` serves the study and its files.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import optuna_dashboard
from optuna.artifacts import get_all_artifact_meta, upload_artifact

from search import disk_space
from search.errors import DiskFull, SearchError, StoreError
from search.results import trial_figure
from search.study import artifact_store, points
from search.study.optuna_internals import study_id, trial_id
from search.study.storage import Storage

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)


def discard(storage: Storage, study_name: str, location: str) -> None:
    """Delete the files attached to a study's trials: ``--fresh`` drops the study next."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage.rdb)
    except KeyError:  # no such study: nothing is attached to it
        return
    store = artifact_store.open_store(location)
    for trial in study.get_trials(deepcopy=False):
        for meta in get_all_artifact_meta(trial, storage=storage.rdb):
            try:  # nothing is deleted from the storage before this ends
                with artifact_store.store_errors(location):
                    artifact_store.remove(store, meta.artifact_id)
            except StoreError as error:
                raise SearchError(f"--fresh cannot delete the study's files: {error}") \
                    from None


def write_history(trial: optuna.Trial | optuna.trial.FrozenTrial, path: Path) -> Path:
    """One row per epoch: every metric and the epoch's training seconds."""
    history = trial.user_attrs[points.HISTORY]
    seconds = trial.user_attrs.get(points.EPOCH_SECONDS, [])
    names = list(history)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", *names, "seconds"])
        for epoch in range(len(history["loss"])):
            writer.writerow([epoch + 1, *(history[name][epoch] for name in names),
                             seconds[epoch] if epoch < len(seconds) else ""])
    return path


class TrialArtifacts:
    """The objective's ``on_finish`` hook: upload a trial's curves, history and final model.

    It runs before the trial is told its value, because Optuna refuses to attach anything
    to a finished trial. Each file is stored on its own, and a store that fails costs the
    file, not the trained trial; a model that could not be stored leaves the reason in the
    trial's ``model_error`` attribute, which ``search.results.export`` repeats. A full disk
    (in the store, or in the temporary folder the files are drawn in) stops the run
    instead (``DiskFull``): the trial's last checkpoint is kept, and the rerun, once there
    is space, stores its files without training it again.
    """

    def __init__(self, location: str | Path, metric: str = "val_accuracy",
                 mnist: bool = True) -> None:
        self.location = location = str(location)
        self.shown = artifact_store.display(location)
        self.store = artifact_store.open_store(location)
        self.curves = trial_figure.TrialCurves(metric, mnist)

    def __call__(self, trial: optuna.Trial, model: keras.Model | None = None) -> None:
        links = self._figures(trial)
        if model is not None:
            links += self._model(trial, model)
        if links:
            # The trial's note shows the figure full size on its page, not only as a
            # thumbnail among the artifacts.
            optuna_dashboard.save_note(trial, "\n\n".join(links))

    def _figures(self, trial: optuna.Trial) -> list[str]:
        replicate = trial.user_attrs.get(points.REPLICATE, 0) + 1
        params = f"{points.format_params(trial.params)}, replicate {replicate}"
        try:
            with tempfile.TemporaryDirectory() as folder:  # drawn here, then stored
                stem = Path(folder) / f"trial-{trial.number}"
                curves = self.curves.draw(trial, stem.with_name(stem.name + "-curves.png"),
                                          f"{trial.study.study_name}, trial #{trial.number}: "
                                          f"{params}")
                history = write_history(trial, stem.with_name(stem.name + "-history.csv"))
                with artifact_store.store_errors(self.location):
                    curves_id, history_id = (
                        upload_artifact(artifact_store=self.store, file_path=str(path),
                                        study_or_trial=trial) for path in (curves, history))
        except (OSError, StoreError) as error:  # a failed store costs the figure, not the trial
            _stop_if_full(error)
            logger.warning("trial %d: could not store its figures in %s: %s", trial.number,
                           self.shown, error)
            return []
        link = _link(trial)
        return [f"![accuracy and loss]({link}/{curves_id})",
                f"[history as CSV]({link}/{history_id})"]

    def _model(self, trial: optuna.Trial, model: keras.Model) -> list[str]:
        name = f"trial-{trial.number}-model.keras"
        try:
            with tempfile.TemporaryDirectory() as folder:  # saved here, then stored
                model.save(Path(folder) / name)
                with artifact_store.store_errors(self.location):
                    artifact_id = upload_artifact(artifact_store=self.store,
                                                  file_path=str(Path(folder) / name),
                                                  study_or_trial=trial)
        except (OSError, StoreError) as error:  # the trial completes; the export says why
            _stop_if_full(error)
            logger.warning("trial %d: could not store its model in %s: %s", trial.number,
                           self.shown, error)
            reason = f"could not be stored in {self.shown}: {error.strerror or error}" \
                if isinstance(error, OSError) else f"could not be stored: {error}"
            trial.set_user_attr(points.MODEL_ERROR, reason)
            return []
        trial.set_user_attr(points.MODEL_ARTIFACT, artifact_id)
        return [f"[final model: {name}]({_link(trial)}/{artifact_id}) (open it with "
                "`keras.models.load_model`; `python -m search.report --study "
                f"{trial.study.study_name} --export-model FILE` writes the best point's)"]


def _stop_if_full(error: BaseException) -> None:
    """A full disk is not one file's failure: the next checkpoint would fail as well, and a
    trial completed without its model could never be exported. Stop the run."""
    if isinstance(error, DiskFull):
        raise error
    if disk_space.is_full(error):  # not the store's (that is a DiskFull): the drawing's
        folder = tempfile.gettempdir()
        raise DiskFull(f"temporary folder {folder}: " + disk_space.full_line(
            folder, "free some space there (or point TMPDIR at a folder with room), then run "
            "the same command to resume")) from None


def _link(trial: optuna.Trial) -> str:
    """Where optuna-dashboard serves a trial's artifacts (its own route)."""
    return f"/artifacts/{study_id(trial.study)}/{trial_id(trial)}"
