"""What the privacy tests plant and how they run `rupture-coder`: canary strings, the network
block (``unshare --net``) and guard (``netguard_sitecustomize.py``), subprocess runs."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.offline import OFFLINE_ENV

SCRIPT = Path(sys.executable).parent / "rupture-coder"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "rupture-default" / "2.1.0"
GUARD_SOURCE = Path(__file__).with_name("netguard_sitecustomize.py")
RUN_TIMEOUT_S = 900  # Python imports, Prefect's temporary server and the model on a loaded 2-core machine

# Canaries: an ordinary (lower-case) word of a turn, coded in every --phi mode but never to be
# logged, and planted identifiers that the gate finds by pattern and context.
TURN_CANARY = "quokkafjord"
IDENTIFIERS = {"person": "Zebulon Quillfeather", "phone": "07700 900461", "email": "zq.canary@example.org"}
IDENTIFIER_PARTS = ("Quillfeather", "Zebulon", "900461", "zq.canary")  # no fragment may survive redaction
HOSTILE_ID = "=talk"  # a session id a spreadsheet would run as a formula
XSS = "<script>alert('x')</script>"
CANARY_CSV = (
    "session_id,turn,speaker,start,end,text\n"
    f"{HOSTILE_ID},1,T,0,5,How has the week been?\n"
    f"{HOSTILE_ID},2,C,5,9,\"Honestly the {TURN_CANARY} thing again, I don't know, whatever.\"\n"
    f"{HOSTILE_ID},3,T,9,12,\"{XSS} Take your time.\"\n"
    f"{HOSTILE_ID},4,C,12,18,\"=cmd|' /C calc'!A0 this is pointless\"\n"
    f"{HOSTILE_ID},5,T,18,25,\"@SUM(1+1) I'm sorry, I pushed too hard there.\"\n"
    f"{HOSTILE_ID},6,C,25,30,\"\tfine I guess\"\n"
    "phi,1,T,0,4,How are you today?\n"
    f"phi,2,C,4,9,\"My name is {IDENTIFIERS['person']}, ring me on {IDENTIFIERS['phone']} or mail "
    f"{IDENTIFIERS['email']}, the {TURN_CANARY} way.\"\n"
    "phi,3,T,9,14,Thank you for telling me that.\n"
    "phi,4,C,14,20,\"It's pointless, whatever.\"\n"
)


def all_canaries() -> tuple[str, ...]:
    return (TURN_CANARY, *IDENTIFIERS.values(), *IDENTIFIER_PARTS)


@functools.lru_cache(maxsize=1)
def unshare_works() -> bool:
    """Whether a new network namespace with loopback up can be made here (root, or user
    namespaces allowed)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    try:
        proc = subprocess.run(["unshare", "--net", "--", "sh", "-c", "ip link set lo up"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def blocked(args: list[str]) -> list[str]:
    """The command run with only loopback networking (when ``unshare`` works here)."""
    if not unshare_works():
        return args
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *args]


def guarded_env(guard: Path, log: Path, prefect_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a guarded run: the user's, without rupture-coder's offline switches
    (``import pipeline`` must set them itself), without a Prefect server address, and with the
    default encoder process (pipeline/run/encoder.py: guarded and checked like the rest)."""
    env = {k: v for k, v in os.environ.items()
           if k not in OFFLINE_ENV and k not in ("PREFECT_API_URL", "RUPTURE_CODER_ENCODER_PROCESS")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(guard), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "RC_NET_GUARD_LOG": str(log), "PREFECT_HOME": str(prefect_home), "COLUMNS": "200",
        "PREFECT_LOGGING_LEVEL": "INFO",  # Prefect's own log lines are checked for canaries too
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600", **extra,
    })
    return env


@dataclass
class Ran:
    """One finished `rupture-coder` subprocess."""

    name: str
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    guard_log: Path
    prefect_home: Path
    out: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def net_attempts(self) -> str:
        return self.guard_log.read_text(encoding="utf-8") if self.guard_log.exists() else ""


def run_cli(name: str, args: list[str], work: Path, guard: Path, out: Path | None = None,
            **env_extra: str) -> Ran:
    """``rupture-coder ARGS`` with -v, network blocked and guarded, its own Prefect home."""
    home, log = work / f"prefect-home-{name}", work / f"netguard-{name}.log"
    command = blocked([str(SCRIPT), "-v", *map(str, args)])
    proc = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=work,
                          env=guarded_env(guard, log, home, **env_extra))
    return Ran(name, [str(a) for a in args], proc.returncode, proc.stdout, proc.stderr, log, home, out)


# --- a disk that fills up ------------------------------------------------------------------------


class _FillingFile:
    """A file object whose writes fail with ENOSPC once its disk's budget is spent."""

    def __init__(self, fh, disk: "FullDisk"):
        self._fh, self._disk = fh, disk

    def write(self, data):
        self._disk.used += len(data)
        if self._disk.used > self._disk.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


class FullDisk:
    """Stands in for the ``os`` module of a writing module: files opened with ``os.fdopen``
    (every atomic write and streamed output) fail with ENOSPC once ``budget`` bytes have been
    written in all; everything else is the real ``os``."""

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, *args, **kwargs):
        return _FillingFile(os.fdopen(fd, *args, **kwargs), self)


WRITERS = ("pipeline.io.files",)  # the one module that writes files (AtomicFile)


def install_full_disk(budget: int) -> FullDisk:
    """Make every output writer of rupture-coder write to a disk that is full after ``budget``
    bytes (for a subprocess; tests use monkeypatch)."""
    import importlib

    disk = FullDisk(budget)
    for name in WRITERS:
        importlib.import_module(name).os = disk
    return disk
