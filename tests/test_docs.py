"""The manual stays true: every study-file key has words, the generated reference pages
name every key and every flag, every study file the README and docs/ show passes the
schema, and every flag they show for a ``python -m search.*`` command exists.

A TOML block that is only part of a study file says so on a line of its own that starts
``# fragment``; it is skipped.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from search import definition, definition_schema, knobs
from search.errors import SearchError

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
_spec = importlib.util.spec_from_file_location("docs_reference",
                                               REPO / "scripts" / "docs_reference.py")
docs_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_reference)
FENCED_TOML = re.compile(r"^```toml\n(.*?)^```", re.S | re.M)
COMMAND = re.compile(r"python -m (search(?:\.\w+)+)([^`#|)\n]*)")


def test_every_key_of_every_section_has_a_type_a_default_and_words() -> None:
    reference = definition_schema.reference()
    assert list(reference) == list(definition_schema._SCHEMA)  # every section a file takes
    for section, keys in reference.items():
        assert keys, f"[{section}] lists no keys"
        for key, (kind, _default, meaning) in keys.items():
            assert kind, f"{section}.{key} has no type"
            assert len(meaning.split()) >= 3, f"{section}.{key} has no description"


def test_the_mlps_searched_parameters_are_exactly_those_it_takes() -> None:
    described = set(knobs.PARAMETER_HELP)
    assert described == set(knobs._PARAMETERS)
    # And the check agrees: a described name is taken, an undescribed one refused.
    for key in described:
        knobs.searched_values("t.toml", key, [knobs.SEED_MODEL.get(key, 32)])
    with pytest.raises(SearchError, match="not a parameter of this model"):
        knobs.searched_values("t.toml", "momentum", [0.9])


def test_the_study_file_page_has_a_row_for_every_key() -> None:
    page = docs_reference.study_file_page(definition_schema.reference())
    for section, keys in definition_schema.reference().items():
        assert f"## [{section}]" in page
        for key in keys:
            assert f"| `{key}` |" in page, f"{section}.{key} missing from the page"


def test_the_options_page_has_a_row_for_every_flag_of_every_command() -> None:
    parsers = docs_reference.parsers()
    page = docs_reference.cli_page(parsers)
    for command, parser in parsers.items():
        assert f"## python -m {command}" in page
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in page, f"{command} {flag} missing from the page"


def _toml_blocks() -> list[tuple[str, str]]:
    return [(f"{page.relative_to(REPO)} block {index}", block)
            for page in PAGES
            for index, block in enumerate(FENCED_TOML.findall(page.read_text()))]


def _fragment(block: str) -> bool:
    return any(line.startswith("# fragment") for line in block.splitlines())


def test_the_pages_show_whole_study_files() -> None:
    complete = [name for name, block in _toml_blocks() if not _fragment(block)]
    assert len(complete) >= 3, complete


@pytest.mark.parametrize("name, block", [pytest.param(*shown, id=shown[0])
                                         for shown in _toml_blocks()])
def test_every_study_file_shown_passes_the_schema(name: str, block: str) -> None:
    if _fragment(block):
        pytest.skip("a fragment of a study file")
    # parse checks the form only: the [model] and [data] modules are never imported.
    definition.parse(block, "shown", name)


def test_every_flag_shown_for_a_command_exists() -> None:
    parsers = docs_reference.parsers()
    shown = 0
    for page in PAGES:
        for module, rest in COMMAND.findall(page.read_text()):
            assert importlib.util.find_spec(module), f"{page.name}: no module {module}"
            if module not in parsers:
                continue
            for flag in re.findall(r"(?<!\S)(--?[a-z][\w-]*)", rest):
                shown += 1
                assert flag in parsers[module]._option_string_actions, \
                    f"{page.relative_to(REPO)}: python -m {module} has no {flag}"
    assert shown > 20  # the pattern still finds the commands
