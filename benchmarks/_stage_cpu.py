"""Run the ``docworkers`` command with each ingestion stage's CPU time (not wall time) counted.

    python benchmarks/_stage_cpu.py OUT.json ingest FOLDER ...   (any docworkers arguments)

Used by ``benchmarks/ingest_throughput.py`` for its stage breakdown. Before the command is
imported, the functions that do each stage's work are wrapped to add the calling thread's CPU
time (``time.thread_time``) to their stage, less the time of the other stages they call (token
counting inside chunking is "chunking: tokenising", not also "chunking: the rest"). Work on
threads no wrapper sees (onnxruntime's pool, the tokenizers' rayon pool, Chroma's native
threads) is counted per thread from ``/proc/self/task`` by a sampler (every 0.2 s), each thread
named by the stage that started it. The parser child's CPU is ``RUSAGE_CHILDREN`` once it was
reaped. At exit OUT.json gets the stages' CPU seconds, the threads' (native ones by the stage
that started them, Python ones by name), the process's and the reaped children's CPU, and when
the model ran.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")
_STARTED = time.perf_counter()
_lock = threading.Lock()
_stages: dict[str, float] = {}
_local = threading.local()
_born: dict[int, str] = {}  # native thread id -> the stage that created it
_seen: dict[int, float] = {}  # thread id -> last CPU seconds read
_python_threads: dict[int, str] = {}  # native id -> Python thread name
_marks: dict[str, float] = {}


def _tasks() -> dict[int, float]:
    """CPU seconds of every live thread of this process."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def _add(stage: str, seconds: float) -> None:
    with _lock:
        _stages[stage] = _stages.get(stage, 0.0) + seconds


def timed(stage: str, func: Callable[..., Any], *, births: str = "") -> Callable[..., Any]:
    """``func`` with its calling thread's CPU time added to ``stage``, less the time of other
    stages it calls; threads it starts are counted under ``births`` (if given)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack: list[list[Any]] = _local.__dict__.setdefault("stack", [])
        if stack and stack[-1][0] == stage:  # the same stage nested: part of the outer call
            return func(*args, **kwargs)
        before = _tasks() if births else None
        frame: list[Any] = [stage, 0.0]  # the stage, CPU of the stages called inside it
        stack.append(frame)
        started = time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            elapsed = time.thread_time() - started
            stack.pop()
            _add(stage, elapsed - frame[1])
            if stack:
                stack[-1][1] += elapsed
            if before is not None:
                for tid in set(_tasks()) - set(before):
                    _born.setdefault(tid, births)

    return wrapper


_running = 0  # model batches running now
_changed = 0.0  # when _running last changed


def busy(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (one model batch, ``OnnxMiniLMEmbedder._run``) counted: the first start, the
    last end, the wall time with at least one batch running, and with as many as the model runs
    at once (its ``parallel_batches``: one per core)."""

    def count(step: int, full: int) -> None:
        global _running, _changed
        now = time.perf_counter()
        with _lock:
            if _running:
                _marks["model_busy"] = _marks.get("model_busy", 0.0) + now - _changed
            if _running >= full:
                _marks["model_full"] = _marks.get("model_full", 0.0) + now - _changed
            _running += step
            _changed = now
            _marks.setdefault("model_first", now - _STARTED)
            _marks["model_last"] = now - _STARTED

    @functools.wraps(func)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        count(+1, model.parallel_batches)
        try:
            return func(model, *args, **kwargs)
        finally:
            count(-1, model.parallel_batches)

    return wrapper


def _sample() -> None:
    while True:
        tasks = _tasks()
        with _lock:
            _seen.update(tasks)
            _python_threads.update((t.native_id, t.name) for t in threading.enumerate()
                                   if t.native_id is not None)
        time.sleep(0.2)


def _report(path: Path) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    _seen.update(_tasks())
    threads: dict[str, float] = {}
    for tid, seconds in _seen.items():
        # A Python thread started inside a stage (the model's helper threads, started by the
        # first embed call) is named as a Python thread: the stage wrappers count its work.
        if tid in _python_threads:
            name = "python: " + _python_threads[tid].split("_")[0].split("-")[0]
        elif tid in _born:
            name = _born[tid]
        else:
            name = "other native threads"
        threads[name] = threads.get(name, 0.0) + seconds
    path.write_text(json.dumps({
        "stages": _stages, "threads": threads, "marks": _marks,
        "process_cpu": usage.ru_utime + usage.ru_stime,
        "children_cpu": children.ru_utime + children.ru_stime,
        "wall": time.perf_counter() - _STARTED,
    }))


def install() -> None:
    """Wrap the stage functions (before the command imports them by name)."""
    import docworkers.ingest.tokenizer as tokenizer

    rayon = "tokenizers' thread pool"
    tokenizer.token_spans = timed("chunking: tokenising", tokenizer.token_spans, births=rayon)
    tokenizer.TokenCounter.count = timed(  # type: ignore[method-assign]
        "chunking: tokenising", tokenizer.TokenCounter.count)
    tokenizer.TokenCounter._learn = timed(  # type: ignore[method-assign]
        "chunking: tokenising", tokenizer.TokenCounter._learn, births=rayon)

    import docworkers.ingest.lexical.index as lexical
    from docworkers.ingest import embedding, pipeline, stages, vector_store
    from docworkers.ingest.parsing import isolated

    pipeline.UploadPipeline._chunk = timed(  # type: ignore[method-assign]
        "chunking: the rest", pipeline.UploadPipeline._chunk)
    lexical._records = timed("keyword index: tokenise chunks", lexical._records)
    from docworkers.ingest import onnx_sessions

    embedding.open_sessions = timed(  # type: ignore[attr-defined]
        "start-up: load the model", onnx_sessions.open_sessions,
        births="onnxruntime pool threads")
    onnx = embedding.OnnxMiniLMEmbedder
    onnx.embed = timed(  # type: ignore[method-assign]
        "embedding: tokenise, batch, pool", onnx.embed, births=rayon)
    onnx._run = busy(timed(  # type: ignore[method-assign]
        "embedding: model (calling thread)", onnx._run))
    repo = vector_store.ChromaVectorRepository
    repo.replace_document = timed(  # type: ignore[method-assign]
        "Chroma writes", repo.replace_document, births="Chroma's threads")
    repo.from_path = classmethod(timed(  # type: ignore[method-assign, assignment]
        "start-up: open Chroma", repo.from_path.__func__,  # type: ignore[attr-defined]
        births="Chroma's threads"))
    stages.enrich_chunks = timed("enrichment", stages.enrich_chunks)
    pipeline.enrich_chunks = stages.enrich_chunks  # type: ignore[attr-defined]
    first_run = pipeline.UploadPipeline.run

    async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        _marks.setdefault("first_job_cpu", time.process_time())
        _marks.setdefault("first_job_wall", time.perf_counter() - _STARTED)
        return await first_run(self, *args, **kwargs)

    pipeline.UploadPipeline.run = run  # type: ignore[method-assign]
    del isolated  # imported so the parser's module is loaded with the wrappers in place


def main() -> None:
    out = Path(sys.argv[1])
    install()
    threading.Thread(target=_sample, name="stage-cpu-sampler", daemon=True).start()
    atexit.register(_report, out)
    from docworkers.cli.app import main as cli

    sys.argv = ["docworkers", *sys.argv[2:]]
    cli()


if __name__ == "__main__":
    main()
