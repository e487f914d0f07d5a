"""Fixtures for the local stack: data folders whose servers are always stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from docworkers.stack import LocalStack


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Callable[[str], LocalStack]]:
    """``stacks("a")`` is the LocalStack of tmp_path/a; every one made is stopped after."""
    made: list[LocalStack] = []

    def make(name: str) -> LocalStack:
        stack = LocalStack(tmp_path / name)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.down()
