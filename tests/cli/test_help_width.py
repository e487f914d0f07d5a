"""Every ``--help`` renders whole in 80 columns: no line wider, no text cut short.

The check compares the help strings of the source (each command's, argument's and option's)
with the rendered page with all whitespace removed, so a string that the formatter wrapped
(also inside a word, at a hyphen: ``--max-`` / ``processes``) still matches, and one that was
cut or lost a word does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

from docworkers.cli import app

WIDTH = 80


def commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command and group of the CLI, the root first."""
    command = command or typer.main.get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def command_at(path: tuple[str, ...]) -> Any:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture
def help_page() -> Callable[[tuple[str, ...]], Result]:
    runner = CliRunner()

    def render(path: tuple[str, ...]) -> Result:
        return runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)},
                             terminal_width=WIDTH)

    return render


@pytest.mark.parametrize("path", list(commands()), ids=lambda path: " ".join(path) or "root")
def test_help_renders_whole_in_80_columns(path: tuple[str, ...],
                                          help_page: Callable[[tuple[str, ...]], Result]
                                          ) -> None:
    result = help_page(path)
    assert result.exit_code == 0, result.output
    page = result.stdout
    assert [line for line in page.splitlines() if len(line) > WIDTH] == []

    command = command_at(path)
    texts = [command.help or ""] + [param.help for param in command.params
                                    if getattr(param, "help", None)]
    # Subcommands are listed with their whole first sentence (click would cut it to one line).
    texts += [sub.get_short_help_str(limit=1_000)
              for sub in getattr(command, "commands", {}).values() if not sub.hidden]
    rest = squeezed(page)
    for text in texts:
        assert squeezed(text) in rest, f"cut or reworded in {path}: {text!r}\n{page}"
    for text in sorted(texts, key=len, reverse=True):
        rest = rest.replace(squeezed(text), "")
    assert "…" not in rest, page  # an ellipsis that is not in the source text is a cut
