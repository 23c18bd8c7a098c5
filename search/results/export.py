"""The best grid point's trained model, as a .keras file: ``python -m search.report --study
mnist --export-model best.keras``, or from Python::

    from search.results import export
    exported = export.export_best_model(study, "best.keras", "studies/mnist.artifacts")
    print(exported.line())
    model = keras.models.load_model("best.keras")

Every COMPLETE trial stored its final model as an Optuna artifact (``TrialArtifacts``); this
copies one of them out, reading the storage and the artifact store (a folder or S3) only.

Which model: the best point is the verdict's (highest mean validation accuracy over its
replicates). Of its replicates, the one exported is the **typical** one: the replicate whose
validation accuracy is closest to the point's mean, ties going to the lower replicate index.
The best replicate would be the luckiest seed, its validation score inflated by the very
noise the replicates average out; the typical one is what the point delivers. Test accuracy
plays no part in the choice: it is only printed, as stored on the chosen trial.

A sampled study's best point is its best confirmed configuration, and its replicates are its
confirm stage's runs alone: the search run that chose it has the same params (and replicate
0) but is never exported for it. A sampled study that confirms nothing (``confirm = 0``) has
no replicates: its best search trial's model is exported, and the line says it is one
unconfirmed run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import optuna

from search import disk_space
from search.errors import SearchError
from search.results import search_stage, table
from search.study import artifact_store, points, stages, units
from search.study.points import format_params

# Accuracies differ by at least one image in a validation set (1e-5 for 100,000 images);
# distances closer than this are equal, up to floating-point rounding.
_ROUNDING = 1e-12

@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """Which trial's model was written where, with its stored accuracies."""

    path: Path
    trial_number: int
    params: dict[str, Any]
    replicate: int  # 0-based, as stored
    replicates: int  # the point's complete replicates
    validation_accuracy: float
    mean_validation_accuracy: float
    test_accuracy: float | None  # its test score of the metric, as stored: never chose it
    metric: str = "val_accuracy"  # what validation_accuracy and its mean measure
    modules: list[str] = dataclasses.field(default_factory=list)  # the user's, to load it
    # Set when the model is one unconfirmed search run (confirm = 0): the search trials it
    # was the best of. Its replicate is then 0 of 1 and its mean its own value.
    search_trials: int = 0

    def line(self) -> str:
        test = "none stored" if self.test_accuracy is None else f"{self.test_accuracy:.4f}"
        measured = "validation accuracy" if self.metric == "val_accuracy" else self.metric
        needs = "" if not self.modules else (
            f"; loading it needs {', '.join(self.modules)} importable (run from the study "
            "file's folder, or put that folder on PYTHONPATH)")
        if self.search_trials:
            which = (f"one unconfirmed search run, the best of {self.search_trials}: "
                     f"{measured} {self.validation_accuracy:.4f}, likely inflated by its "
                     "seed's luck, as [search] confirm = 0 re-trained nothing")
        else:
            which = (f"replicate {self.replicate + 1} of {self.replicates}: {measured} "
                     f"{self.validation_accuracy:.4f}, the closest to the point's mean "
                     f"{self.mean_validation_accuracy:.4f}")
        return (f"exported trial {self.trial_number} ({format_params(self.params)}, {which}; "
                f"stored {points.test_name(self.metric).replace('_', ' ')} {test}) to "
                f"{self.path}{needs}")


def modules_needed(path: Path) -> list[str]:
    """The modules besides Keras's that loading the .keras file at ``path`` imports: the
    user's custom layers and functions, as its config names them."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    found: set[str] = set()
    todo = [config]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            module = item.get("module")
            if isinstance(module, str) and module.split(".")[0] not in ("keras", "builtins"):
                found.add(module)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return sorted(found)


def typical_replicate(validation: dict[int, float]) -> int:
    """The replicate whose accuracy is closest to the mean; ties to the lower index."""
    if not validation:
        raise ValueError("no replicate to choose from")
    mean = sum(validation.values()) / len(validation)
    distance = {replicate: abs(value - mean) for replicate, value in validation.items()}
    # Two replicates are always equally far from their mean; rounding must not pick one.
    closest = min(distance.values()) + _ROUNDING
    return min(replicate for replicate, value in distance.items() if value <= closest)


def _trial_of(study: optuna.Study, params: dict[str, Any],
              replicate: int) -> optuna.trial.FrozenTrial:
    key = points.canonical(params)
    # A sampled study's search run shares its configuration's params and replicate 0, but is
    # not one of the replicates the verdict averaged: only confirm units are looked at.
    for status in stages.configurations_confirmed(units.unit_status(study)):
        if points.canonical(status.unit.params) == key and status.unit.replicate == replicate \
                and status.complete is not None:
            return status.complete
    raise SearchError(f"study '{study.study_name}': no complete trial of "
                      f"{format_params(params)} replicate {replicate + 1} (changed while read?)")


def _artifact_id(trial: optuna.trial.FrozenTrial, name: str) -> str:
    artifact_id = trial.user_attrs.get(points.MODEL_ARTIFACT)
    if artifact_id is not None:
        return artifact_id
    error = trial.user_attrs.get(points.MODEL_ERROR)
    why = f"its model {error}" if error else "it ran before trials kept their models"
    raise SearchError(f"trial {trial.number} ({name}) has no stored model: {why}; run the "
                      "study again with --fresh (or under a new name) to get one")


def _copy_out(location: str, artifact_id: str, path: Path,
              trial: optuna.trial.FrozenTrial) -> None:
    """Write the artifact to ``path`` whole or not at all (a temporary file, renamed)."""
    with artifact_store.store_errors(location):
        data = artifact_store.get_bytes(artifact_store.open_store(location), artifact_id)
    if data is None:
        raise SearchError(f"trial {trial.number}'s model (artifact {artifact_id}) is missing "
                          f"from {artifact_store.display(location)}; was it moved or "
                          "deleted? (pass the --storage, --artifacts and --studies-dir the "
                          "study ran with)")
    temporary = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                                 delete=False) as file:
            temporary = Path(file.name)
            file.write(data)
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()
        if disk_space.is_full(error):
            raise SearchError(f"cannot write {path}: " + disk_space.full_line(
                path.parent, "free some space there or pick another --export-model FILE",
                kept="any earlier file there is unchanged")) from None
        raise SearchError(f"cannot write {path}: {error.strerror or error}; pick another "
                          "--export-model FILE") from None


def export_best_model(study: optuna.Study, path: str | Path,
                      artifacts: str | Path) -> ExportedModel:
    """Write the best point's typical model (see the module docstring) to ``path``.

    ``artifacts`` is the study's artifact store (``Locations.artifacts``: a folder such as
    ``studies/NAME.artifacts`` beside a SQLite file, or ``s3://bucket/prefix``). Raises a
    one-line SearchError when no trial is complete, the model was not stored or is gone, the
    store cannot be reached, or ``path`` cannot be written.
    """
    path = Path(path)
    sampled = stages.is_sampled(study)
    if sampled and study.user_attrs.get(points.CONFIRM, 0) == 0:
        return _export_search_run(study, path, str(artifacts))
    best = table.verdict_of(study).best
    if best is None or best.mean is None:
        what, until = ("confirmed configuration with a complete trial", "until its confirm "
                       "stage has trained one") if sampled else ("complete trial", "first")
        raise SearchError(f"study '{study.study_name}' has no {what} yet: no model to "
                          f"export; run it {until}")
    replicate = typical_replicate(best.validation)
    trial = _trial_of(study, best.params, replicate)
    artifact_id = _artifact_id(trial, f"{format_params(best.params)}, replicate "
                                      f"{replicate + 1}")
    _copy_out(str(artifacts), artifact_id, path, trial)
    return ExportedModel(path, trial.number, dict(best.params), replicate, best.n,
                         best.validation[replicate], best.mean,
                         points.test_score(trial, points.objective_of(study)[0]),
                         points.objective_of(study)[0], modules_needed(path))


def _export_search_run(study: optuna.Study, path: Path, artifacts: str) -> ExportedModel:
    """A study that confirms nothing has no replicates to average: write its best search
    trial's model (ties to the earlier search unit, as the confirm stage would rank them)."""
    statuses = units.unit_status(study)
    search = {status.unit.id: status for status in statuses
              if status.unit.stage == points.SEARCH_STAGE}
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = stages.best_configurations(list(search.values()), 1, maximize)
    if not best:
        raise SearchError(f"study '{study.study_name}' has no complete trial yet: no model to "
                          "export; run it first")
    chosen = search[best[0]]
    trial, params = chosen.complete, chosen.unit.params
    _copy_out(artifacts, _artifact_id(trial, f"{format_params(params)}, search trial"), path,
              trial)
    return ExportedModel(path, trial.number, dict(params), 0, 1, trial.value, trial.value,
                         points.test_score(trial, points.objective_of(study)[0]),
                         points.objective_of(study)[0], modules_needed(path),
                         search_trials=len(search_stage.search_trials(statuses)))
