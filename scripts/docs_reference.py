"""The manual's generated reference pages: the study file, read from the definition schema
(``search.definition_schema.reference``), and the command-line options, read from the
argument parsers of ``python -m search.run``, ``search.report`` and ``search.dashboard``.

mkdocs runs this as a hook (``hooks:`` in mkdocs.yml), so the pages are made on every
build and never stored: ``mkdocs build --strict`` or ``mkdocs serve``. To print one page:

    python scripts/docs_reference.py study-file     # or: cli
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

STUDY_FILE_PAGE = "reference/study-file.md"
CLI_PAGE = "reference/cli.md"
API_PAGE = "reference/api.md"
COMMANDS = ("search.run", "search.report", "search.dashboard")

# Why each section exists, in one line; its keys' words live beside their checks.
SECTIONS = {
    "search_space": "What the study searches: each key a list of values (a grid) or a range "
                    "(a sampler's); the built-in MLP's parameters, or a [model] builder's "
                    "arguments.",
    "model": "Your own Keras model: a builder and its fixed arguments. Leave it out to train "
             "the built-in MLP.",
    "data": "Your own data. Leave it out to train on MNIST.",
    "objective": "What the study optimizes, and in which direction.",
    "search": "How configurations are chosen: the grid (the default) or one of Optuna's "
              "samplers with an exact trial budget, a confirm stage and a pruner.",
    "training": "The training budget and fixed settings; every key has a default, so a "
                "study file holds only what differs.",
    "storage": "Where the study's trials and files live.",
}


def _cell(value: Any) -> str:
    text = "—" if value is None else f"`{value}`" if not isinstance(value, str) else value
    return text.replace("|", "\\|")


def study_file_page(reference: dict[str, dict[str, tuple[str, Any, str]]]) -> str:
    """Markdown: one table per section, a row per key (type, default, meaning)."""
    lines = ["# The study file", "",
             "Generated from `search.definition_schema.reference()` on every build: each key's "
             "words live beside the code that checks it. A study file `studies/NAME.toml` "
             "holds `[search_space]` and whichever other sections differ from the defaults.",
             ""]
    for section, keys in reference.items():
        lines += [f"## [{section}]", "", SECTIONS[section], "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(meaning)} |"
                  for key, (kind, default, meaning) in keys.items()]
        lines.append("")
    return "\n".join(lines)


def _option_row(action: argparse.Action) -> str:
    flags = ", ".join(f"`{flag}`" + (f" `{action.metavar}`" if action.metavar else "")
                      for flag in action.option_strings)
    default = action.default if action.default not in (None, False, argparse.SUPPRESS) else None
    meaning = (action.help or "").replace("%%", "%")
    if action.required:
        meaning = "required; " + meaning
    return f"| {flags} | {_cell(default)} | {_cell(meaning)} |"


def cli_page(parsers: dict[str, argparse.ArgumentParser]) -> str:
    """Markdown: per command, its description and a row per option."""
    lines = ["# Command-line options", "",
             "Generated from each command's `build_parser()` on every build; `--help` shows "
             "the same.", ""]
    for command, parser in parsers.items():
        lines += [f"## python -m {command}", "", (parser.description or "").strip(), "",
                  "| option | default | meaning |", "|---|---|---|"]
        lines += [_option_row(action) for action in parser._actions
                  if action.option_strings and action.dest != "help"]
        lines.append("")
    return "\n".join(lines)


def api_page(public: dict[str, str]) -> str:
    """Markdown: each public name of ``search`` (``search._PUBLIC``), its docstring rendered
    by mkdocstrings from the module that holds it."""
    lines = ["# Python API", "",
             "`import search` loads each of these names on first use. Generated from "
             "`search._PUBLIC` and the docstrings on every build.", ""]
    for name, where in sorted(public.items()):
        module, _, attribute = where.partition(":")
        lines += [f"::: {module}.{attribute or name}", "    options:",
                  "      heading_level: 2", ""]
    return "\n".join(lines)


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, as its ``main`` builds it."""
    import importlib

    return {command: importlib.import_module(command).build_parser() for command in COMMANDS}


def pages() -> dict[str, str]:
    """The generated pages: their paths under docs/, and their text."""
    # The manual documents this checkout's code, even where another copy is installed
    # (mkdocs restores sys.path after loading a hook, so this is done at call time).
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import search
    from search import definition_schema

    return {STUDY_FILE_PAGE: study_file_page(definition_schema.reference()),
            CLI_PAGE: cli_page(parsers()), API_PAGE: api_page(search._PUBLIC)}


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated pages to the site (they are never written to docs/)."""
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "study-file"
    print(pages()[f"reference/{name}.md"])
