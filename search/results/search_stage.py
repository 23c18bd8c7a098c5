"""A sampled study's search stage as the report tells it: how many search trials ended, the
best search value, each parameter's importance, and for each confirmed configuration how far
its confirmed mean falls from the one search run that chose it (the winner's curse).

``search_study`` hands the search trials alone to Optuna's own tools (importance, plots):
Optuna's functions take a whole study, and the confirm trials are not search results.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.results.statistics import PointSummary
from search.study import points, stages
from search.study.points import format_params


def _search(statuses: list[points.UnitStatus]) -> list[points.UnitStatus]:
    return [status for status in statuses if status.unit.stage == points.SEARCH_STAGE]


def search_trials(statuses: list[points.UnitStatus]) -> list[FrozenTrial]:
    """Each search unit's COMPLETE trial, in unit order."""
    return [status.complete for status in _search(statuses) if status.complete is not None]


def search_study(study: optuna.Study, statuses: list[points.UnitStatus]) -> optuna.Study:
    """An in-memory study holding the search stage's trials alone, in the study's direction."""
    found = optuna.create_study(direction=study.direction.name.lower(),
                                study_name=f"{study.study_name} (search)")
    found.add_trials(search_trials(statuses))
    return found


def importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's default importance of each parameter over ``study`` (PED-ANOVA, which needs
    no scikit-learn, and is deterministic); {} while too few trials or none varies."""
    if len(study.trials) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every trial has the same configuration
        return {}


@dataclasses.dataclass(frozen=True)
class SearchSummary:
    trials: int  # the budget
    ended: int
    complete: int
    best: FrozenTrial | None
    importances: dict[str, float]
    confirm: int
    pruned: dict[int, int] = dataclasses.field(default_factory=dict)  # epoch -> trials

    def to_json(self, stages_of: list[dict[str, Any]]) -> dict[str, Any]:
        best = self.best
        return {"trials": self.trials, "ended": self.ended, "complete": self.complete,
                "best_value": best.value if best else None,
                "best_params": best.params if best else None,
                "best_trial": best.number if best else None,
                "importances": self.importances, "confirm": self.confirm,
                "pruned": sum(self.pruned.values()),
                "pruned_at_epochs": {str(epoch): n for epoch, n in self.pruned.items()},
                "trial_stages": stages_of}


def summarise(study: optuna.Study, statuses: list[points.UnitStatus],
              importance: bool = True) -> SearchSummary:
    limit = points.max_attempts(study)
    search = _search(statuses)
    memory = search_study(study, statuses)
    best = memory.best_trial if memory.trials else None
    ended = sum(status.state(limit) in stages.ENDED for status in search)
    pruned: dict[int, int] = {}
    for status in search:
        if status.pruned is not None and status.complete is None:
            epoch = status.pruned.user_attrs.get(points.PRUNED_AT_EPOCH, 0)
            pruned[epoch] = pruned.get(epoch, 0) + 1
    return SearchSummary(len(search), ended, len(memory.trials), best,
                         importances(memory) if importance else {},
                         study.user_attrs.get(points.CONFIRM, 0), dict(sorted(pruned.items())))


def progress_line(study: optuna.Study, statuses: list[points.UnitStatus], configurations: int,
                  confirmed_runs: int) -> str:
    """``study 'x' (tpe): search 12 of 40 trials ended; confirm: ...``."""
    search = summarise(study, statuses, importance=False)
    repeats = study.user_attrs.get(points.REPEATS, 1)
    confirm = (f"confirm: {confirmed_runs} of {configurations * repeats} trials complete "
               f"({configurations} configuration(s) x {repeats} fresh seed(s))"
               if configurations else "confirm: starts once every search trial has ended")
    return (f"study '{study.study_name}' ({study.user_attrs[points.BUDGET]['search']['sampler']}"
            f"): search {search.ended} of {search.trials} trials ended; {confirm}")


def lines(summary: SearchSummary, metric: str) -> list[str]:
    """The search stage in a few sentences."""
    pruned = "".join(f"; {count} after epoch {epoch}" for epoch, count in summary.pruned.items())
    found = [f"search: {summary.ended} of {summary.trials} trials ended, {summary.complete} "
             f"complete" + (f", {sum(summary.pruned.values())} pruned ({pruned[2:]})"
                            if pruned else "")]
    if summary.best is not None:
        found.append(f"best search trial: #{summary.best.number} "
                     f"{format_params(summary.best.params)}: {metric} {summary.best.value:.4f}")
        if summary.confirm == 0:
            found.append("that is one unconfirmed run, the best of many noisy ones, so it is "
                         "likely inflated; set [search] confirm to re-train the best on fresh "
                         "seeds")
    if summary.importances:
        found.append("importance (Optuna's PED-ANOVA over the search trials): " + ", ".join(
            f"{name} {value:.2f}" for name, value in summary.importances.items()))
    return found


def gap_lines(summaries: list[PointSummary], statuses: list[points.UnitStatus],
              metric: str) -> list[str]:
    """For each confirmed configuration: its search value beside its confirmed mean."""
    search_value = search_values(statuses)
    found = []
    for summary in summaries:
        value = search_value.get(points.canonical(summary.params))
        if summary.n == 0 or value is None:
            continue
        spread = f" ± {summary.std:.4f}" if summary.std is not None else ""
        found.append(f"{format_params(summary.params)}: the search measured {value:.4f}; on "
                     f"{summary.n} fresh seed(s) it averages {summary.mean:.4f}{spread} "
                     f"({metric}, gap {summary.mean - value:+.4f})")
    return found


def search_values(statuses: list[points.UnitStatus]) -> dict[str, float]:
    """Each confirmed configuration's search value (the search run that chose it)."""
    search = {status.unit.id: status for status in _search(statuses)}
    found = {}
    for status in stages.configurations_confirmed(statuses):
        chosen = search.get(status.unit.point)
        if chosen is not None and chosen.complete is not None:
            found[points.canonical(status.unit.params)] = chosen.complete.value
    return found


def trial_stages(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial's number, stage, state and value: the JSON's record of the stages."""
    return [{"number": trial.number, "stage": stages.stage_of(trial),
             "state": trial.state.name, "value": trial.value, "params": trial.params}
            for trial in study.get_trials(deepcopy=False)]
