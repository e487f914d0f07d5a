"""The console script's exit: what is alive at its end is frozen out of the collector (the
interpreter's last collections would only walk every module's objects), and the exit code and
the exit handlers are kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import atexit, gc, sys
    atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, file=sys.stderr))
    sys.argv = ["docworkers", *sys.argv[1:]]
    from docworkers.cli import main
    main()
""")


@pytest.mark.parametrize(("args", "code"), [(["--help"], 0), (["no-such-command"], 2)])
def test_the_entry_point_freezes_the_heap_and_keeps_the_exit_code(args: list[str],
                                                                  code: int) -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == code, run.stderr
    assert "frozen True" in run.stderr
    assert ("Usage" in run.stdout) if code == 0 else ("No such command" in run.stderr)
