"""The builder a study's trials call, and the checks it passes before the first trial.

The built-in MLP (``search.training.model.build_model``) is one builder among others: its
knobs are its keyword arguments. A [model] builder is imported by name in every process
that needs it (nothing is pickled), or handed over as a function by ``search.run_study``.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from search import ranges, usercode
from search.definition import StudyDefinition
from search.errors import SearchError
from search.study.points import format_params
from search.training import path_choice, user_model
from search.training.model import build_model
from search.userdata import UserData

Builder = Callable[..., keras.Model]


def builder_of(definition: StudyDefinition, given: Builder | None = None) -> Builder:
    """``given``, else the definition's [model] builder (imported), else the MLP's."""
    if given is not None:
        return given
    if definition.model is None:
        return build_model
    return usercode.import_function(definition.model["build"], definition.folder,
                                    definition.where("model.build"))


def check(definition: StudyDefinition, builder: Builder, data: UserData) -> keras.Model:
    """Before anything is stored: the [model] builder takes the grid's keys, builds a
    compiled model at the first grid point, the model takes every split of ``data`` and
    reports the objective metric. Each failure is one SearchError line naming the file and
    key. (The built-in MLP's metrics are checked with its definition.) Returns the model,
    whose path ``paths`` then chooses without building it again."""
    where = definition.where("model.build")
    fixed = [key for key in definition.model if key != "build"]
    usercode.check_builder_arguments(builder, definition.search_space, fixed, where)
    # The first configuration it may be given: each list's first value, each range's low end.
    point = {name: ranges.lowest(values) for name, values in definition.search_space.items()}
    keras.backend.clear_session()
    keras.utils.set_random_seed(definition.seed)
    try:
        model = builder(**definition.model_arguments(point))
    except Exception as error:  # whatever the user's builder raises
        raise SearchError(f"{where}: building the model at {format_params(point)} failed: "
                          f"{usercode.describe_error(error)}") from None
    names = user_model.probe(model, data, where)
    user_model.check_metric(definition.metric, names, definition.where("objective.metric"))
    keras.backend.clear_session()
    return model


def fingerprint(definition: StudyDefinition, builder: Builder) -> str | None:
    """What a study records of its builder's code: None for the built-in MLP."""
    return None if definition.model is None else usercode.fingerprint_module(builder)


def _shape(arguments: dict) -> str:
    return repr({key: value for key, value in arguments.items() if key != "learning_rate"})


def paths(definition: StudyDefinition, builder: Builder,
          checked: keras.Model | None = None) -> dict[str, dict[str, str]]:
    """The path of each model architecture of the grid, by ``path_choice``'s rule:
    ``{architecture: {"path", "why", "layers"}}``. The built-in MLP has one, its own
    compiled path. Points that differ only in learning rate build once; the grid's first,
    which ``check`` built (``checked``), is not built again. A sampled study has no grid:
    a worker records each architecture's path when it first builds it."""
    if definition.model is None:
        return {"mlp": {"path": "compiled", "why": "the built-in MLP's own whole-epoch XLA "
                        "loop", "layers": "the built-in MLP"}}
    chosen: dict[str, dict[str, str]] = {}
    if definition.search.sampled:
        return chosen
    first = {name: ranges.lowest(values) for name, values in definition.search_space.items()}
    ready = {} if checked is None else {_shape(definition.model_arguments(first)): checked}
    seen = set()
    for point in definition.grid:
        arguments = definition.model_arguments(point)
        if _shape(arguments) in seen:
            continue
        seen.add(_shape(arguments))
        model = ready.get(_shape(arguments))
        if model is None:
            keras.backend.clear_session()
            try:
                model = builder(**arguments)
            except Exception:  # whatever the builder raises: that point's trial says why
                continue
        if isinstance(model, keras.Model):
            choice = path_choice.choose(model) if definition.path == "auto" \
                else path_choice.Choice(definition.path, "the study's [training] path")
            chosen.setdefault(path_choice.architecture(model), {
                "path": choice.path, "why": choice.why, "layers": path_choice.summary(model)})
    keras.backend.clear_session()
    return chosen
