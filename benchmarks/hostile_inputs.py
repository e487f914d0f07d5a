"""Hostile-length text through the real upload pipeline: bounded time, bounded memory, a typed
outcome (issue 11).

Run from the repository root:

    .venv/bin/python benchmarks/hostile_inputs.py [--sizes 1,20,100] [--kinds line,text,run]
        [--embed-timeout 120] [--chunk-timeout 600]

``--chunking`` times ``chunk_text`` alone instead (in this process, every strategy or those of
``--strategies``), e.g. ``--chunking --sizes 1,2,4 --kinds line,text``; run it with
``PYTHONPATH`` set to another checkout's ``src`` to compare versions.

For each size (MiB) and kind of text it writes a ``.txt`` file and ingests it as one
``document_upload`` job in a fresh interpreter: an UploadWorker on a private Redis
(``EmbeddedRedis``), embedded Chroma in a temporary folder, the real model, parsing in its
killable child (``parse_timeout`` 120 s, text capped at 50 M characters). Kinds:

* ``line``: words on one line, no punctuation, no line break (was quadratic to chunk);
* ``text``: the same words as prose: sentences, lines of ~12 words, paragraphs;
* ``run``: one run of ``x`` without a space (was one "1-token" chunk of the whole file).

Printed per input: the job's outcome (status and error code), wall time from enqueue to the end,
the stage it ended in, chunks and the longest chunk stored, and peak resident memory of the
worker process (``ru_maxrss``: model, Chroma, text, chunks, embeddings) and of the parser child
(``VmHWM``). The embedding stage is given ``--embed-timeout`` seconds (120 by default) so that a
run ends within minutes: at ~20 chunks/s on two cores a 20 MiB text would embed for 20 minutes,
and the point is that it ends in a typed error (``embed_timeout``) at the limit, not that it
completes. The other stages keep their defaults unless given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peak_memory import status_mb  # benchmarks/ is on sys.path when a script runs

MIB = 1024 * 1024
_WORDS = (
    "the of and to in is was for on that with as by at from his it an were are which this be "
    "or has had not but also its first one their after new two who they been more other into "
    "time when all during there would some most than only over years may between about under "
    "three world made such many where while later both then these through since same before "
    "being most used city could part state well back year people called known high school "
    "against river flow wing pressure boundary layer shock wave stands ahead blunt body mach "
    "numbers transition depends reynolds heat transfer stagnation point surface velocity "
    "temperature measured experimental results theory agreement data model method analysis"
)
VOCABULARY = _WORDS.split()


def write_text(path: Path, size: int, kind: str, seed: int = 11) -> None:
    """``size`` bytes of ``kind`` text (see the module doc), written in blocks."""
    rng = random.Random(seed)
    written = 0
    with path.open("w", encoding="ascii") as out:
        while written < size:
            if kind == "run":
                block = "x" * min(MIB, size - written)
            elif kind == "line":
                block = " ".join(rng.choices(VOCABULARY, k=40_000)) + " "
            else:
                block = _prose(rng, 40_000)
            block = block[: size - written]
            out.write(block)
            written += len(block)


def _prose(rng: random.Random, words: int) -> str:
    paragraphs: list[str] = []
    left = words
    while left > 0:
        lines: list[str] = []
        for _ in range(rng.randint(3, 8)):
            sentence = rng.choices(VOCABULARY, k=rng.randint(8, 20))
            left -= len(sentence)
            sentence[0] = sentence[0].capitalize()
            lines.append(" ".join(sentence) + ".")
        text = " ".join(lines).split(" ")
        paragraphs.append("\n".join(" ".join(text[i:i + 12]) for i in range(0, len(text), 12)))
    return "\n\n".join(paragraphs) + "\n\n"


async def child_run(path: Path, limits: dict[str, float]) -> dict[str, Any]:
    from _ingest_harness import IngestHarness, upload_payload

    from docworkers.ingest.embedding import OnnxMiniLMEmbedder
    from docworkers.ingest.stage_limits import StageLimits

    embedder = OnnxMiniLMEmbedder()
    out: dict[str, Any] = {}
    async with IngestHarness(embedder, concurrency=1, limits=StageLimits(**limits)) as harness:
        started = time.perf_counter()
        run = await harness.ingest([upload_payload(path, "hostile")], poll=0.5, timeout=7200)
        out["seconds"] = time.perf_counter() - started
        job = run.jobs[0]
        out["status"] = job.status.value
        out["code"] = job.error.code if job.error else None
        out["stage"] = (job.error.stage or "-") if job.error else "completed"
        out["retries"] = job.retry_count
        out["message"] = job.error.message[:160] if job.error else ""
        if job.result:
            document_id = job.result["document_id"]
            chunks = harness.vectors.document_chunks("hostile", document_id)
            out["chunks"] = len(chunks)
            out["longest_chunk"] = max(len(text) for _id, text, _meta in chunks)
            out["timings_s"] = {k: v / 1000 for k, v in job.result["timings_ms"].items()}
        peaks = [status_mb(pid, "VmHWM") for pid in harness.services.parser.pids]
        out["parser_peak_mb"] = max((p for p in peaks if p is not None), default=None)
        out["worker_running"] = harness.worker.is_running()
    out["worker_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(path: Path, limits: dict[str, float]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(path), "--limits", json.dumps(limits)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def chunking_table(args: argparse.Namespace) -> None:
    """Seconds of ``chunk_text`` per strategy, size and kind (one process, warm tokenizer)."""
    import docworkers
    from docworkers.ingest.chunking import chunk_text

    chunk_text("warm up the tokenizer")
    strategies = args.strategies.split(",")
    print(f"chunk_text from {Path(docworkers.__file__).parent}")
    print(f"{'input':<16} " + " ".join(f"{s:>10}" for s in strategies) + "   longest chunk")
    with tempfile.TemporaryDirectory(prefix="docworkers-chunking-") as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            for kind in args.kinds.split(","):
                path = Path(folder) / "text.txt"
                write_text(path, size * MIB, kind)
                text = path.read_text(encoding="ascii")
                cells, longest = [], 0
                for strategy in strategies:
                    started = time.perf_counter()
                    spans = chunk_text(text, strategy=strategy)
                    cells.append(f"{time.perf_counter() - started:>10.2f}")
                    longest = max(longest, max(end - start for start, end, _n in spans))
                print(f"{kind + ' ' + str(size) + ' MiB':<16} " + " ".join(cells)
                      + f"   {longest:,}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,20,100", help="MiB, comma-separated")
    parser.add_argument("--kinds", default="line,text,run")
    parser.add_argument("--embed-timeout", type=float, default=120.0)
    parser.add_argument("--chunk-timeout", type=float, default=None)
    parser.add_argument("--chunking", action="store_true", help="time chunk_text alone")
    parser.add_argument("--strategies", default="recursive,markdown,sentence,token,fixed")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--limits", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chunking:
        chunking_table(args)
        return
    if args.child:
        from _ingest_harness import quiet_logs

        quiet_logs()
        print(json.dumps(asyncio.run(child_run(Path(args.child), json.loads(args.limits)))))
        return
    limits: dict[str, float] = {"embed_timeout": args.embed_timeout}
    if args.chunk_timeout is not None:
        limits["chunk_timeout"] = args.chunk_timeout
    print(f"stage limits: {limits} (others: defaults)", flush=True)
    header = (f"{'input':<16} {'outcome':<26} {'time s':>7} {'ended in':<11} {'chunks':>7} "
              f"{'longest':>8} {'worker MB':>9} {'parser MB':>9}  stages (s)")
    print(header)
    print("-" * len(header), flush=True)
    with tempfile.TemporaryDirectory(prefix="docworkers-hostile-") as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            for kind in args.kinds.split(","):
                path = Path(folder) / f"{kind}-{size}mib.txt"
                write_text(path, size * MIB, kind)
                r = run_child(path, limits)
                path.unlink()
                outcome = r["status"] + (f" ({r['code']})" if r["code"] else "")
                if not r["worker_running"]:
                    outcome += " WORKER STOPPED"
                stages = " ".join(f"{k[:5]} {v:.1f}" for k, v in r.get("timings_s", {}).items())
                parser_mb = r["parser_peak_mb"]
                name = f"{kind} {size} MiB"
                print(f"{name:<16} {outcome:<26} {r['seconds']:>7.1f} {r['stage']:<11} "
                      f"{r.get('chunks', '-'):>7} {r.get('longest_chunk', '-'):>8} "
                      f"{r['worker_peak_mb']:>9.0f} "
                      f"{parser_mb if parser_mb is None else round(parser_mb):>9}  {stages}",
                      flush=True)


if __name__ == "__main__":
    main()
