"""A study's results, read from storage alone: one row per grid point, the verdict, exports.

Each grid point's row aggregates its replicates (mean, seed-adjusted mean, std, 95 %
interval, mean test accuracy) and carries its mark from the verdict (``search.results.
verdict``). Nothing is retrained: every number comes from what the trials stored, read
through Optuna's public study API alone (a study copied into another storage reports the
same).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import optuna

from search.errors import SearchError
from search.results import search_stage, statistics
from search.results.statistics import PointSummary
from search.results.verdict import Verdict, judge
from search.study import points, stages, units
from search.study.points import format_params, format_value

# A point's state, from its units': the first of these that any unit is in.
_POINT_STATES = (points.GIVEN_UP, points.RUNNING, points.RETRYING, points.PENDING)
# A point's mark in the verdict column, the heatmap and the note ("" before it has results).
BEST, CONTENDER, RULED_OUT = "best", "contender", "ruled out"


@dataclasses.dataclass
class PointRow:
    summary: PointSummary
    state: str  # complete, or the most pressing state among its unfinished replicates
    repeats: int
    mark: str = ""  # BEST, CONTENDER or RULED_OUT once it has results
    search_value: float | None = None  # a confirmed configuration's search run

    @property
    def best(self) -> bool:
        return self.mark == BEST


def unit_rows(study: optuna.Study) -> list[points.UnitStatus]:
    if points.BUDGET not in study.user_attrs:
        raise SearchError(f"study '{study.study_name}' has no stored definition; "
                          "it was not made by search.run")
    return units.unit_status(study)


def point_results(statuses: list[points.UnitStatus],
                  metric: str = points.DEFAULT_METRIC) -> list[statistics.PointResult]:
    """Each grid point's (or confirmed configuration's) COMPLETE replicates, in grid order,
    with their test scores of the objective's ``metric``. A sampled study's search trials
    never enter: the verdict reads its confirm stage alone."""
    by_point: dict[int, statistics.PointResult] = {}
    for status in stages.configurations_confirmed(statuses):
        unit = status.unit
        result = by_point.setdefault(unit.point, statistics.PointResult(unit.params, {}, {}))
        if status.complete is not None:
            result.validation[unit.replicate] = status.complete.value
            test = points.test_score(status.complete, metric)
            if test is not None:
                result.test[unit.replicate] = test
    return [by_point[point] for point in sorted(by_point)]


def objective_of(study: optuna.Study) -> tuple[bool, str]:
    """Whether the study maximises, and its objective's name (``points.objective_of``)."""
    metric, direction = points.objective_of(study)
    return direction == "maximize", metric


def _judged(study: optuna.Study, results: list[statistics.PointResult]
            ) -> tuple[list[PointSummary], Verdict]:
    maximize, metric = objective_of(study)
    summaries = statistics.summarise(results, maximize)
    return summaries, judge(summaries, maximize=maximize, metric=metric,
                            levels=not stages.is_sampled(study))


def verdict_of(study: optuna.Study) -> Verdict:
    return _judged(study, point_results(unit_rows(study), points.objective_of(study)[0]))[1]


def point_rows(study: optuna.Study) -> tuple[list[PointRow], Verdict]:
    """One row per grid point, best seed-adjusted mean first (validation only), and the
    verdict."""
    statuses = unit_rows(study)
    limit = points.max_attempts(study)
    states: dict[str, list[str]] = {}
    searched = search_stage.search_values(statuses)
    for status in stages.configurations_confirmed(statuses):
        states.setdefault(points.canonical(status.unit.params), []).append(status.state(limit))
    summaries, verdict = _judged(study, point_results(statuses, points.objective_of(study)[0]))
    marks = {points.canonical(entry.params): CONTENDER for entry in verdict.contenders}
    marks |= {points.canonical(entry.params): RULED_OUT for entry in verdict.ruled_out}
    if verdict.best is not None:
        marks[points.canonical(verdict.best.params)] = BEST
    rows = []
    for summary in summaries:
        key = points.canonical(summary.params)
        unit_states = states[key]
        state = next((s for s in _POINT_STATES if s in unit_states), points.COMPLETE)
        rows.append(PointRow(summary, state, len(unit_states), marks.get(key, ""),
                             searched.get(key)))
    return rows, verdict


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def records(rows: list[PointRow]) -> list[dict[str, Any]]:
    """Flat dictionaries for tables and CSV: one per grid point, best seed-adjusted mean
    first."""
    result = []
    for row in rows:
        summary = row.summary
        ci = summary.ci95
        result.append({
            **{name: format_value(value) for name, value in summary.params.items()},
            "n": f"{summary.n}/{row.repeats}",
            **({"search": _number(row.search_value)} if row.search_value is not None else {}),
            "mean": _number(summary.mean),
            "adjusted_mean": _number(summary.adjusted_mean),
            "std": _number(summary.std), "ci95": f"{ci[0]:.4f}-{ci[1]:.4f}" if ci else "-",
            "test_mean": _number(summary.test_mean), "state": row.state,
            "verdict": row.mark})
    return result


def format_table(rows: list[PointRow]) -> str:
    data = records(rows)
    if not data:
        return "(no grid points)"
    headers = list(data[0])
    widths = [max(len(h), *(len(str(r[h])) for r in data)) for h in headers]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(r[h]).rjust(w) for h, w in zip(headers, widths, strict=True))
              for r in data]
    return "\n".join(lines)


def progress_line(study: optuna.Study, rows: list[PointRow]) -> str:
    if stages.is_sampled(study):
        return _sampled_progress(study, rows)
    done_points = sum(row.state == points.COMPLETE for row in rows)
    trials = sum(row.summary.n for row in rows)
    repeats = rows[0].repeats if rows else 0
    return (f"study '{study.study_name}': {done_points} of {len(rows)} grid points complete, "
            f"{trials} of {len(rows) * repeats} trials ({repeats} replicate(s) per point)")


def _sampled_progress(study: optuna.Study, rows: list[PointRow]) -> str:
    return search_stage.progress_line(study, unit_rows(study), len(rows),
                                      sum(row.summary.n for row in rows))


def _search_lines(study: optuna.Study, rows: list[PointRow]) -> list[str]:
    """A sampled study's confirmed gaps and its search summary ([] for a grid)."""
    if not stages.is_sampled(study):
        return []
    statuses, metric = unit_rows(study), points.objective_of(study)[0]
    return ["", *search_stage.gap_lines([row.summary for row in rows], statuses, metric), "",
            *search_stage.lines(search_stage.summarise(study, statuses), metric)]


def _given_up_lines(study: optuna.Study) -> list[str]:
    limit = points.max_attempts(study)
    return [f"given up: {format_params(s.unit.params)} replicate {s.unit.replicate + 1}: "
            f"{s.last_failure}" for s in unit_rows(study) if s.state(limit) == points.GIVEN_UP]


def summary(study: optuna.Study) -> str:
    """How much is done, the table of grid points, the verdict, and any given-up units."""
    rows, verdict = point_rows(study)
    return "\n".join([progress_line(study, rows), "", format_table(rows), "",
                      *verdict.lines, *_search_lines(study, rows), *_given_up_lines(study)])


def markdown(study: optuna.Study) -> str:
    """The summary as Markdown: the study's note in optuna-dashboard."""
    rows, verdict = point_rows(study)
    data = records(rows)
    headers = list(data[0]) if data else []
    lines = [f"### {progress_line(study, rows)}", "",
             *(f"- {line}" for line in verdict.lines + _search_lines(study, rows) if line), "",
             "| " + " | ".join(headers) + " |", "|" + " ---: |" * len(headers)]
    lines += ["| " + " | ".join(str(r[h]) for h in headers) + " |" for r in data]
    lines += ["", "mean, std (n-1) and the 95 % interval: the last epoch's validation value "
              "over the replicates; adjusted_mean takes out what each seed does to every "
              "point, and ranks them. 'contender': cannot be ruled out as best; 'ruled out': "
              f"another point beats it by more than the margin ({verdict.method or '-'}). "
              + ("search: the one search run that chose the configuration; the rest are its "
                 "confirm runs on fresh seeds. " if stages.is_sampled(study) else "") +
              "Each trial's page lists its curves and history. Full report: "
              f"`python -m search.report --study {study.study_name}`"]
    return "\n".join(lines)


def to_json(study: optuna.Study) -> str:
    """``{"points": [...], "verdict": {...}}``: the contract other tools read. ``pairs`` is
    the same list under its old name, kept for one release."""
    rows, verdict = point_rows(study)
    found = [{**row.summary.to_json(), "state": row.state, "repeats": row.repeats,
              "verdict": row.mark, **({"search_value": row.search_value}
                                      if row.search_value is not None else {})}
             for row in rows]
    document = {"study": study.study_name, "points": found, "pairs": found,
                "verdict": verdict.to_json()}
    if stages.is_sampled(study):
        summary = search_stage.summarise(study, unit_rows(study))
        document["search"] = summary.to_json(search_stage.trial_stages(study))
    return json.dumps(document, indent=2, default=str)

