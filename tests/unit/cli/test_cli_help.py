"""Every ``leofs`` command's ``--help``: each option described, no one-line summary cut off.

The properties are checked over the whole click command tree, so a new command or option is
covered without a new test; the rendered help of every command is also compared with
``help_snapshot.txt`` (regenerate it with ``LEOFS_UPDATE_HELP_SNAPSHOT=1``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from leofs.cli.main import cli

SNAPSHOT = Path(__file__).with_name("help_snapshot.txt")
#: click cuts a docstring's first sentence at this many characters in a group's command list
SHORT_HELP_LIMIT = 45


def walk(command: click.Command, path: tuple[str, ...] = ("leofs",)) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every visible command under ``command``, with its command line."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if not sub.hidden:
                yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli))
IDS = [" ".join(path) for path, _ in COMMANDS]


def render_help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path[1:], "--help"], prog_name="leofs", terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_tree_is_complete() -> None:
    names = set(IDS)
    assert {"leofs server", "leofs manager", "leofs storage", "leofs gateway", "leofs adm",
            "leofs adm wait-nodes", "leofs adm whereis", "leofs adm compact-start"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_option_is_described(path: tuple[str, ...], command: click.Command) -> None:
    undescribed = [p.opts[0] for p in command.params
                   if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert not undescribed, f"{' '.join(path)}: options without help: {undescribed}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_summary_is_whole(path: tuple[str, ...], command: click.Command) -> None:
    summary = command.get_short_help_str(SHORT_HELP_LIMIT)
    assert summary, f"{' '.join(path)} has no help"
    assert not summary.endswith(("...", "…")), f"{' '.join(path)}: summary cut off: {summary!r}"
    assert (command.help or "").strip(), f"{' '.join(path)} has no description"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_renders_and_lists_no_cut_off_summary(path: tuple[str, ...], command: click.Command) -> None:
    text = render_help(path)
    body = text.split("\n", 1)[1]  # the usage line's "[ARGS]..." is click's notation
    assert "..." not in body and "…" not in body, text


@pytest.mark.parametrize("command", ["server", "gateway"])
def test_protocol_offers_s3_rest_and_both(command: str) -> None:
    text = render_help(("leofs", command))
    assert "[s3|rest|s3,rest]" in text and "--rest-address" in text, text


def test_log_level_default_matches_its_choices() -> None:
    text = render_help(("leofs",))
    assert "[default: warning]" in text and "debug|info|warning|error" in text, text


def test_help_snapshot() -> None:
    current = "".join(f"$ {' '.join(path)} --help\n{render_help(path)}\n" for path, _ in COMMANDS)
    if os.environ.get("LEOFS_UPDATE_HELP_SNAPSHOT"):
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), "no snapshot yet: run with LEOFS_UPDATE_HELP_SNAPSHOT=1"
    assert current == SNAPSHOT.read_text(), "help text changed: review, then LEOFS_UPDATE_HELP_SNAPSHOT=1"
