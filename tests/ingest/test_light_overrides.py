"""chromadb imported after docworkers.ingest skips the ``overrides`` checks, and still works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from overrides import EnforceOverrides

from docworkers.ingest.light_overrides import mark_override


def _fresh(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_chromadb_after_docworkers_ingest_uses_the_marking_decorator(tmp_path: Path) -> None:
    out = _fresh(f"""
        import docworkers.ingest
        import sys
        import chromadb, overrides
        checks = sys.modules["overrides.overrides"]
        from docworkers.ingest.light_overrides import mark_override
        print(overrides.override is mark_override, overrides.overrides is mark_override)
        calls = []
        real = checks._validate_method
        checks._validate_method = lambda *a: calls.append(a) or real(*a)
        client = chromadb.PersistentClient({str(tmp_path)!r})  # builds the lazily imported parts
        collection = client.get_or_create_collection("light", embedding_function=None)
        collection.add(ids=["a"], embeddings=[[1.0, 0.0]], documents=["text"])
        print(collection.get(ids=["a"])["documents"], len(calls))
    """)
    assert out.splitlines() == ["True True", "['text'] 0"]


def test_a_process_that_imported_overrides_first_keeps_its_checks() -> None:
    out = _fresh("""
        import overrides
        real = overrides.override
        import docworkers.ingest
        print(overrides.override is real)
    """)
    assert out == "True"


def test_the_marking_decorator_satisfies_enforce_overrides() -> None:
    class Base(EnforceOverrides):
        def run(self) -> int:
            return 1

    class Plain(Base):
        @mark_override
        def run(self) -> int:
            return 2

    class WithOptions(Base):
        @mark_override(check_signature=False)
        def run(self) -> int:
            return 3

    assert (Plain().run(), WithOptions().run()) == (2, 3)
    with pytest.raises(TypeError, match="run"):

        class Unmarked(Base):
            def run(self) -> int:
                return 4
