"""Short-lived processes skip the interpreter's final walk over every object
(``pipeline.run.processes.skip_final_collection``): the command line once its command is done,
whatever its exit status, and the writer process at the end of its input. Each check runs the
real entry point in a fresh interpreter and looks, from an exit handler (which runs after the
entry point returns or raises SystemExit), whether the objects were frozen."""

from __future__ import annotations

import subprocess
import sys

import pytest

# an exit handler registered before the entry point runs after it: it reports the freeze
PROBE = ("import atexit, gc, sys\n"
         "atexit.register(lambda: sys.stderr.write('frozen=%d\\n' % (gc.get_freeze_count() > 0)))\n")


def _run(code: str) -> subprocess.CompletedProcess:  # empty stdin: the writer's input ends at once
    return subprocess.run([sys.executable, "-c", PROBE + code], input="", capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("argv, status", [(["codes"], 0), (["code", "no-such-input.csv"], 2)])
def test_command_line_freezes_objects_before_its_exit(argv, status):
    proc = _run(f"sys.argv = ['rupture-coder'] + {argv!r}\nfrom pipeline.cli._app import main\nmain()\n")
    assert proc.returncode == status, proc.stderr[-2000:]
    assert "frozen=1" in proc.stderr


def test_nothing_is_frozen_without_it():  # the probe itself can tell
    proc = _run("pass\n")
    assert proc.returncode == 0 and "frozen=0" in proc.stderr


def test_writer_process_freezes_objects_at_end_of_input():
    proc = _run("sys.argv = ['writer']\nfrom pipeline.run.writer import main\nmain()\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frozen=1" in proc.stderr


def test_encoder_process_freezes_objects_at_end_of_input():
    proc = _run("sys.argv = ['encoder', 'hashing.v1']\nfrom pipeline.run.encoder import main\nmain()\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frozen=1" in proc.stderr
