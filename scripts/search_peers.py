"""One search method of ``scripts/bench_search.py`` on one benchmark study, in its own process.

    python scripts/search_peers.py --method kt-hyperband --definition DIR/regression.toml \
        --seed 0 --trials 0 --out result.json

Methods: ``kt-random``, ``kt-bayes``, ``kt-hyperband`` (KerasTuner 1.4: ``RandomSearch``,
``BayesianOptimization``, ``Hyperband`` through a ``build(hp)`` adapter around the study's
own builder) and ``optuna-hyperband`` (plain Optuna: ``study.optimize`` with TPE and
``HyperbandPruner``, each epoch reported through a Keras callback, as Optuna's examples do).
Every method trains the study's builder on the study's data and split (``search.datasets``),
for the study's epochs. The result file holds the chosen configuration, the score the method
reported for it, the epochs trained and the trials run. Our own service runs as users run it
(``python -m search.run``): see ``scripts/bench_search.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from search import datasets, definition, ranges  # noqa: E402
from search.training import builders  # noqa: E402
from search.worker import process  # noqa: E402

EPOCHS_TRAINED = [0]  # every epoch any trial of this process trained


def _keras_callbacks() -> list[Any]:
    import keras

    class CountEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            EPOCHS_TRAINED[0] += 1

    return [CountEpochs()]


def _fit_arguments(study: definition.StudyDefinition, data: Any) -> dict[str, Any]:
    return {"x": data.x_train, "y": data.y_train, "epochs": study.epochs, "verbose": 0,
            "validation_data": (data.x_valid, data.y_valid)}


def keras_tuner(method: str, study: definition.StudyDefinition, data: Any, build: Any,
                seed: int, trials: int) -> dict[str, Any]:
    import keras_tuner as kt

    class Adapter(kt.HyperModel):
        def build(self, hp: kt.HyperParameters) -> Any:
            return build(**study.model_arguments(_hp_config(hp, study.search_space)))

        def fit(self, hp: kt.HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model.fit(*args, batch_size=study.batch_size_at(
                _hp_config(hp, study.search_space)), **kwargs)

    objective = kt.Objective(study.metric, "min" if study.direction == "minimize" else "max")
    common = {"objective": objective, "seed": seed, "overwrite": True,
              "directory": tempfile.mkdtemp(), "project_name": "bench"}
    if method == "kt-hyperband":
        tuner = kt.Hyperband(Adapter(), max_epochs=study.epochs, factor=3, **common)
    elif method == "kt-bayes":
        tuner = kt.BayesianOptimization(Adapter(), max_trials=trials, **common)
    else:
        tuner = kt.RandomSearch(Adapter(), max_trials=trials, **common)
    arguments = _fit_arguments(study, data)
    tuner.search(arguments.pop("x"), arguments.pop("y"), callbacks=_keras_callbacks(),
                 **arguments)
    best = tuner.oracle.get_best_trials(1)[0]
    config = _hp_config(best.hyperparameters, study.search_space)
    return {"config": config, "reported": float(best.score),
            "trials": len(tuner.oracle.trials)}


def _hp_config(hp: Any, space: dict[str, Any]) -> dict[str, Any]:
    """The configuration ``hp`` holds, each parameter declared as the study's space says."""
    found = {}
    for name, values in space.items():
        if not ranges.is_range(values):
            found[name] = hp.Choice(name, values)
        elif ranges.is_int_range(values):
            found[name] = hp.Int(name, values["low"], values["high"],
                                 sampling="log" if values["log"] else "linear")
        else:
            found[name] = hp.Float(name, float(values["low"]), float(values["high"]),
                                   sampling="log" if values["log"] else "linear")
    return found


def plain_optuna(study: definition.StudyDefinition, data: Any, build: Any, seed: int,
                 trials: int) -> dict[str, Any]:
    import keras
    import optuna

    class Report(keras.callbacks.Callback):
        def __init__(self, trial: optuna.Trial) -> None:
            super().__init__()
            self.trial = trial

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.trial.report(float(logs[study.metric]), step=epoch + 1)
            if self.trial.should_prune():
                raise optuna.TrialPruned()

    def objective(trial: optuna.Trial) -> float:
        keras.backend.clear_session()
        config = {name: ranges.suggest(trial, name, values)
                  for name, values in study.search_space.items()}
        model = build(**study.model_arguments(config))
        history = model.fit(batch_size=study.batch_size_at(config),
                            callbacks=[Report(trial), *_keras_callbacks()],
                            **_fit_arguments(study, data))
        return float(history.history[study.metric][-1])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = optuna.create_study(
        direction=study.direction, sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=study.epochs,
                                              reduction_factor=3))
    found.optimize(objective, n_trials=trials)
    return {"config": found.best_params, "reported": found.best_value, "trials": trials}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag in ("--method", "--definition", "--seed", "--trials", "--out"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    file = Path(args.definition)
    study = definition.load(file.stem, file.parent)
    process.import_tensorflow_quietly()
    import keras

    keras.utils.set_random_seed(int(args.seed))
    data = datasets.load(study)
    build = builders.builder_of(study)
    if args.method == "optuna-hyperband":
        result = plain_optuna(study, data, build, int(args.seed), int(args.trials))
    else:
        result = keras_tuner(args.method, study, data, build, int(args.seed),
                             int(args.trials))
    result["epochs"] = EPOCHS_TRAINED[0]
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
