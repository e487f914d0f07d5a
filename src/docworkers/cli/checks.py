"""Checking a command's job options before anything is stored or queued, with the API's checks
and messages (:mod:`docworkers.ingest.upload_checks`), as one usage error naming each option."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from docworkers.cli.context import UsageError
from docworkers.errors import ConfigurationError

if TYPE_CHECKING:
    from docworkers.settings import Settings

#: The command-line option of each payload field that commands build from options.
OPTION_NAMES: dict[str, str] = {
    "chunk_size": "--chunk-size", "chunk_overlap": "--chunk-overlap",
    "chunking_strategy": "--strategy", "collection": "--collection",
    "extract_metadata": "--extract-metadata", "num_questions": "--questions",
    "max_pages": "--max-pages", "ocr": "--ocr", "source": "PATHS",
}


def check_job(settings: Settings, job_type: str, payload: Mapping[str, Any], *, priority: int,
              options: Mapping[str, str] | None = OPTION_NAMES) -> None:
    """UsageError naming each wrong field of a ``job_type`` job: by its option in ``options``
    when the command built the payload from options, as a payload field when ``options`` is
    None (``jobs submit``, whose payload is given whole). A chunk size must fit the window of
    the configured embedder, as the API requires."""
    from docworkers.ingest.upload_checks import job_problems
    from docworkers.queue import JobSpec
    from docworkers.runtime import embedder_window

    named: dict[str, str] = {}
    try:
        JobSpec(job_type, {}, priority=priority)
    except ConfigurationError as exc:
        named[f"--{exc.field}"] = exc.problem
    problems = job_problems(job_type, payload, window=embedder_window(settings),
                            embedder=settings.embedder)
    if not (named or problems):
        return
    if options is None and not named:
        raise UsageError(f"invalid payload: {_describe(problems)}")
    named.update((options.get(name, name) if options else name, problem)
                 for name, problem in problems.items())
    if len(named) == 1:
        ((name, problem),) = named.items()
        raise UsageError(f"invalid option {name}: {problem}")
    raise UsageError(f"invalid options: {_describe(named)}")


def _describe(problems: Mapping[str, str]) -> str:
    return "; ".join(f"{name}: {problem}" for name, problem in problems.items())
