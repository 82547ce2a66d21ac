"""The background worker: a process that keeps the model, the encoder and the gate's spaCy NER
loaded, so that ``rupture-coder code`` on one session answers in seconds (issue #14).

``rupture-coder worker start`` starts it (detached; the command returns once a warm-up job has
run, so every lazy import is done); ``code --runner auto`` sends it the inline case (one small
input file) when it runs the same model and code, and ``--runner worker`` sends it any job.
Corpora still go through Prefect. A job runs :func:`pipeline.run.local.code_corpus`, the inline
runner's code path, in the client's working folder and with its umask and log level, so the
outputs are those of an inline run byte for byte; progress, log records and the summary (or the
error) come back to the client, which prints them as an inline run would.

Private by construction: the worker listens on a Unix domain socket only (no network), in a
folder that must be a directory owned by the user with mode 0700 (refused otherwise), the socket
has mode 0600, and the worker serves only connections of its own user (``SO_PEERCRED``). Its
log (``worker.log`` beside the socket, mode 0600) holds start, stop, counts, timings and error
classes, never transcript text, file names or paths; the transcripts' data held for a job is
dropped when the job ends.

Protocol: newline-delimited JSON. The worker greets every connection with ``hello`` (its
identity: rupture-coder version, a fingerprint of its code, the model); the client then sends
``status``, ``stop`` or ``code``. A ``code`` job is answered with ``accepted`` (``queued`` when
another job runs: one at a time), ``progress`` and ``log`` events, then ``done`` (the summary)
or ``error``. A client that goes away (Ctrl-C) cancels its job at the next step: what was
written (committed sessions) is kept, as in an interrupted inline run.

This module imports only the standard library at the top: the client side must not pay for
torch, sentence-transformers, scikit-learn or spaCy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import queue
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from pipeline.errors import ConfigError, Problem, RuptureCoderError
from pipeline.version import __version__

log = logging.getLogger(__name__)

PROTOCOL = 1
SOCKET_NAME = "worker.sock"
PID_NAME = "worker.pid"
LOCK_NAME = "worker.lock"
LOG_NAME = "worker.log"
RUNTIME_ENV = "RUPTURE_CODER_RUNTIME_DIR"
DEFAULT_IDLE_TIMEOUT_S = 30 * 60
HELLO_TIMEOUT_S = 10.0  # a worker that does not greet within this is taken for hung
START_TIMEOUT_S = 600.0  # model load and warm-up job on a loaded machine
MAX_MESSAGE = 16 * 2**20
MAX_LOG_BYTES = 2**20
START_FIX = "start one with `rupture-coder worker start`"
WARM_UP_CSV = ("speaker,text\nT,What would you like to focus on today?\nC,I don't know. Whatever you think.\n"
               "T,It sounds hard to choose. Can we stay with that for a moment?\n"
               "C,This is pointless, we keep going over the same thing.\n")


class WorkerUnavailable(Exception):
    """No usable worker (none running, a stale socket, another model or code): ``--runner
    auto`` codes in this process instead."""


class JobCancelled(Exception):
    """The client went away (Ctrl-C): the job stops at the next step."""


# --- where the worker lives --------------------------------------------------------------------

def runtime_dir() -> Path:
    """``$RUPTURE_CODER_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/rupture-coder``, else
    ``~/.cache/rupture-coder/run`` (``$XDG_CACHE_HOME`` if set)."""
    if os.environ.get(RUNTIME_ENV):
        return Path(os.environ[RUNTIME_ENV])
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "rupture-coder"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rupture-coder" / "run"


def private_dir(create: bool = False) -> Path:
    """The runtime folder, checked: a real directory (not a symbolic link) owned by this user,
    with no permission for group or others. ``create`` makes it (mode 0700) when missing.
    Raises ConfigError when it is not private, FileNotFoundError when missing."""
    path = runtime_dir()
    if create and not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    st = os.lstat(path)
    problem = None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        problem = "not a directory (or a symbolic link)"
    elif st.st_uid != os.getuid():
        problem = f"owned by user id {st.st_uid}, not by you ({os.getuid()})"
    elif st.st_mode & 0o077:
        problem = f"mode {stat.S_IMODE(st.st_mode):04o}: other users have access"
    if problem:
        raise ConfigError("the background worker's folder is not private", path=path, found=problem,
                          expected="a directory owned by you with mode 0700",
                          fix=f"remove it (rupture-coder makes it again, private), or set {RUNTIME_ENV} "
                              "to a folder only you can access")
    return path


def socket_path(folder: Path) -> Path:
    path = folder / SOCKET_NAME
    if len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes on Linux, 104 elsewhere
        raise ConfigError("the background worker's folder path is too long for a socket", path=folder,
                          fix=f"set {RUNTIME_ENV} to a shorter folder")
    return path


# --- identity: the same model and the same code --------------------------------------------------

def code_fingerprint() -> str:
    """The installed code (pipeline/ and flows/ sources: names, sizes, modification times): a
    worker started before the code changed does not serve jobs (an editable install)."""
    import pipeline

    digest = hashlib.sha256(__version__.encode())
    roots = [Path(pipeline.__file__).parent]
    spec = importlib.util.find_spec("flows")  # found, not imported (it would import Prefect)
    if spec is not None and spec.origin:
        roots.append(Path(spec.origin).parent)
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(f for f in files if f.endswith(".py")):
                st = os.stat(os.path.join(folder, name))
                digest.update(f"{os.path.relpath(os.path.join(folder, name), root)}|{st.st_size}|"
                              f"{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def identity(model: str | None) -> dict:
    """What a job must match to be served by a worker: version, code, model (its folder and
    heads). Raises the model's error when it cannot be found."""
    from pipeline.run.config import model_identity

    m = model_identity(model)
    return {"protocol": PROTOCOL, "rupture_coder": __version__, "code": code_fingerprint(),
            "model": {"name": m["name"], "version": m["version"], "path": str(Path(m["path"]).resolve()),
                      "heads_sha256": m["heads_sha256"]}}


# --- messages ------------------------------------------------------------------------------------

def _send(sock: socket.socket, message: dict, lock: threading.Lock | None = None) -> None:
    data = (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    if lock is None:
        sock.sendall(data)
    else:
        with lock:
            sock.sendall(data)


def _receive(stream) -> dict | None:
    """The next message, None at the end of the stream."""
    line = stream.readline(MAX_MESSAGE + 1)
    if not line:
        return None
    if len(line) > MAX_MESSAGE or not line.endswith(b"\n"):
        raise ValueError("message too long or cut off")
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("not a message")
    return message


# --- client ------------------------------------------------------------------------------------

class Connection:
    """A connection to the running worker, after its greeting (``hello``)."""

    def __init__(self, sock: socket.socket, hello: dict):
        self.sock, self.hello = sock, hello
        self.stream = sock.makefile("rb")

    def close(self) -> None:
        try:
            self.stream.close()
            self.sock.close()
        except OSError:
            pass

    def request(self, message: dict) -> dict | None:
        _send(self.sock, message)
        return _receive(self.stream)


def connect(timeout: float = HELLO_TIMEOUT_S) -> Connection:
    """Connect to the worker of this user. Raises WorkerUnavailable when none answers (no
    folder, no socket, a stale socket, no greeting in time) and ConfigError when the folder is
    not private (a socket there could belong to anyone)."""
    try:
        folder = private_dir()
    except FileNotFoundError:
        raise WorkerUnavailable("no worker folder") from None
    path = socket_path(folder)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise WorkerUnavailable("no socket") from None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        raise ConfigError("the background worker's socket is not yours", path=path,
                          found="not a socket owned by you", fix="remove it, then `rupture-coder worker start`")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        conn = Connection(sock, {})
        hello = _receive(conn.stream)
    except (OSError, ValueError) as err:  # refused (stale socket), timed out, garbled
        sock.close()
        raise WorkerUnavailable(f"no answer on the socket ({type(err).__name__})") from None
    if not hello or hello.get("event") != "hello":
        sock.close()
        raise WorkerUnavailable("no greeting")
    sock.settimeout(None)
    conn.hello = hello
    return conn


def status() -> dict | None:
    """The running worker's status (its greeting), or None when none runs."""
    try:
        conn = connect()
    except WorkerUnavailable:
        return None
    conn.close()
    return conn.hello


def worker_for(model: str | None, explicit: bool) -> Connection | None:
    """A connection to a worker that runs ``model`` with this code, or None (``explicit``
    False: the caller codes in this process; the reason is logged at DEBUG). With ``explicit``
    (``--runner worker``) a missing or different worker is a ConfigError."""
    try:
        conn = connect()
    except WorkerUnavailable as why:
        if explicit:
            raise ConfigError("no background worker is running", found=str(why), fix=START_FIX) from None
        log.debug("no background worker (%s): coding in this process", why)
        return None
    except ConfigError:
        if explicit:
            raise
        log.debug("the background worker's folder is not private: coding in this process")
        return None
    try:
        wanted = identity(model)
    except RuptureCoderError:
        conn.close()
        if explicit:
            raise
        return None  # the in-process run reports the model error properly
    theirs = conn.hello.get("identity", {})
    if theirs != wanted:
        conn.close()
        what = ("model" if theirs.get("model") != wanted["model"] else
                "version of rupture-coder" if theirs.get("rupture_coder") != wanted["rupture_coder"] else
                "copy of the code (source files changed since it started)")
        if explicit:
            raise ConfigError(f"the background worker runs another {what}",
                              found=f"{describe_model(theirs)}, code {theirs.get('code')} (pid {conn.hello.get('pid')})",
                              expected=f"{describe_model(wanted)}, code {wanted['code']}",
                              fix="`rupture-coder worker stop`, then `rupture-coder worker start` "
                                  "with this --model")
        log.debug("the background worker runs another %s: coding in this process", what)
        return None
    return conn


def describe_model(ident: dict) -> str:
    m = ident.get("model") or {}
    return f"model {m.get('name')}/{m.get('version')}, rupture-coder {ident.get('rupture_coder')}"


def current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def run_job(conn: Connection, inputs: list[str], config, progress: Callable[[str, int, int], None] | None,
            on_queued: Callable[[], None] | None = None) -> dict:
    """Send a coding job and wait for it: progress and the worker's log records as they come
    (re-logged here under their logger's name), then the summary. Raises the job's error as an
    inline run would raise it (RuptureCoderError, OSError), WorkerUnavailable when the worker
    refused the job before starting it (stopping), RuntimeError for an unexpected failure."""
    job = {"type": "code", "cwd": os.getcwd(), "inputs": list(inputs),
           "inputs_resolved": [os.path.realpath(p) for p in inputs], "config": asdict(config),
           "umask": current_umask(), "log_level": logging.getLogger().getEffectiveLevel()}
    _send(conn.sock, job)
    while True:
        message = _receive(conn.stream)
        if message is None:
            raise RuptureCoderError("the background worker stopped during the job",
                                    fix="run the same command again (sessions already written are kept); "
                                        "`rupture-coder worker status` tells whether it still runs")
        event = message.get("event")
        if event == "progress" and progress is not None:
            progress(*message["args"])
        elif event == "queued" and on_queued is not None:
            on_queued()
        elif event == "log":
            logging.getLogger(message["name"]).log(message["level"], "%s", message["message"])
        elif event == "done":
            summary = message["summary"]
            summary["plan_problems"] = [Problem(**p) for p in summary.get("plan_problems", [])]
            return summary
        elif event == "unavailable":
            raise WorkerUnavailable(message.get("reason", "refused"))
        elif event == "error":
            raise _error_from(message)


def _error_from(message: dict) -> BaseException:
    kind = message.get("kind")
    if kind == "rupture":
        import pipeline.errors as errors

        fields = message["fields"]
        cls = getattr(errors, message.get("class", ""), RuptureCoderError)
        if not (isinstance(cls, type) and issubclass(cls, RuptureCoderError)):
            cls = RuptureCoderError
        try:
            return cls(fields.pop("message"), **fields)
        except TypeError:
            return RuptureCoderError(message["fields"].get("message", "error"))
    if kind == "oserror":
        return OSError(message.get("errno") or 0, message.get("strerror") or "", message.get("filename"))
    sys.stderr.write(message.get("traceback", ""))
    return RuntimeError(f"the background worker failed: {message.get('type')}: {message.get('message')}")


def _error_message(err: BaseException) -> dict:
    if isinstance(err, RuptureCoderError):
        fields = {"message": err.message, "path": err.path, "line": err.line, "session_id": err.session_id,
                  "expected": err.expected, "found": err.found, "fix": err.fix}
        return {"event": "error", "kind": "rupture", "class": type(err).__name__, "fields": fields}
    if isinstance(err, OSError):
        filename = err.filename if isinstance(err.filename, (str, type(None))) else os.fsdecode(err.filename)
        return {"event": "error", "kind": "oserror", "errno": err.errno, "strerror": err.strerror,
                "filename": filename}
    return {"event": "error", "kind": "internal", "type": type(err).__name__, "message": str(err),
            "traceback": "".join(traceback.format_exception(err))}


def stop(timeout: float = 60.0) -> int | None:
    """Stop the running worker (after the job it runs, if any); its pid, or None when none ran.
    A worker that does not answer is sent SIGTERM (its pid file names it)."""
    folder = runtime_dir()
    pid = None
    try:
        conn = connect()
    except WorkerUnavailable:
        conn = None
    if conn is not None:
        pid = conn.hello.get("pid")
        try:
            conn.request({"type": "stop"})
        except (OSError, ValueError):
            pass
        conn.close()
    else:
        pid = _worker_pid(folder)
        if pid is None:
            _remove_stale(folder)
            return None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            _remove_stale(folder)
            return None
    deadline = time.monotonic() + timeout
    while pid is not None and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid is not None and _alive(pid):
        raise ConfigError("the background worker did not stop", found=f"pid {pid} still running",
                          fix=f"end it with `kill {pid}`")
    _remove_stale(folder)
    return pid


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _worker_pid(folder: Path) -> int | None:
    """The pid in the pid file, if that process is alive and is a worker."""
    try:
        pid = int((folder / PID_NAME).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid if _alive(pid) else None
    return pid if b"pipeline.run.worker" in cmdline else None


def _remove_stale(folder: Path) -> None:
    """Socket and pid file of a worker that is gone (killed): nobody holds the lock."""
    import fcntl

    try:
        private_dir()  # never remove files from a folder that is not ours alone
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except (OSError, RuptureCoderError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # a worker holds it
    try:
        for name in (SOCKET_NAME, PID_NAME):
            (folder / name).unlink(missing_ok=True)
    finally:
        os.close(fd)


def start(model: str | None, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
          timeout_s: float = START_TIMEOUT_S) -> dict:
    """Start a worker for ``model`` in the background and wait until it is ready (model loaded,
    warm-up job done); its greeting. A worker already running for the same model and code is
    kept (``already`` True); one for another model is an error."""
    wanted = identity(model)  # a bad --model fails here, before anything starts
    folder = private_dir(create=True)
    socket_path(folder)
    running = status()
    if running is not None:
        if running.get("identity") == wanted:
            return {**running, "already": True}
        raise ConfigError("a background worker for another model or version is running",
                          found=f"{describe_model(running.get('identity', {}))} (pid {running.get('pid')})",
                          fix="`rupture-coder worker stop` first")
    if model is not None and Path(model).is_dir():
        model = str(Path(model).resolve())  # the worker runs in its own folder
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "pipeline.run.worker", "--ready-fd", str(write_fd),
               "--idle-timeout", repr(float(idle_timeout_s)), *(["--model", model] if model is not None else [])]
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, pass_fds=(write_fd,), start_new_session=True,
                                cwd=str(folder), close_fds=True)
    finally:
        os.close(write_fd)
    try:
        answer = _read_ready(read_fd, proc, timeout_s)
    finally:
        os.close(read_fd)
    if answer.get("ready"):
        hello = status()
        if hello is None:
            raise ConfigError("the background worker started but does not answer",
                              fix=f"see {folder / LOG_NAME}, then `rupture-coder worker stop`")
        return {**hello, "already": False}
    if proc.poll() is None:  # it said no: let it finish exiting
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    error = answer.get("error")
    if isinstance(error, dict) and error.get("kind") == "rupture":
        raise _error_from({"event": "error", **error})
    if isinstance(error, dict) and error.get("kind") == "busy":
        raise ConfigError("another background worker is starting or running", fix="`rupture-coder worker status`")
    raise ConfigError("the background worker did not start",
                      found=(f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict)
                             else f"exit status {proc.poll()}"),
                      fix=f"see {folder / LOG_NAME}")


def _read_ready(fd: int, proc: subprocess.Popen, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\n"):
                break
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
        return {"error": {"type": "timeout", "message": f"not ready after {timeout_s:.0f} s"}}
    try:
        return json.loads(data) if data.strip() else {}
    except ValueError:
        return {}


# --- server ------------------------------------------------------------------------------------

class _Job:
    def __init__(self, conn: socket.socket, request: dict, lock: threading.Lock):
        self.conn, self.request, self.lock = conn, request, lock
        self.cancelled = threading.Event()
        self.finished = threading.Event()

    def send(self, message: dict) -> None:
        if self.cancelled.is_set():
            return
        try:
            _send(self.conn, message, self.lock)
        except OSError:  # the client went away
            self.cancelled.set()


class _Forward(logging.Handler):
    """Log records of a job, sent to its client (which prints them as an inline run would);
    never written to the worker's own log."""

    def __init__(self, job: _Job, level: int):
        super().__init__(level)
        self.job = job

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == __name__ or record.name.startswith(__name__ + "."):
            return
        try:
            self.job.send({"event": "log", "name": record.name, "level": record.levelno,
                           "message": record.getMessage()})
        except Exception:  # noqa: BLE001 - logging must not break the job
            pass


class Server:
    def __init__(self, model: str | None, idle_timeout_s: float):
        self.model, self.idle_timeout_s = model, idle_timeout_s
        self.jobs: queue.Queue[_Job] = queue.Queue()
        self.stopping = threading.Event()
        self.busy = threading.Event()
        self.last_active = time.monotonic()
        self.started = time.time()
        self.jobs_done = 0
        self.identity: dict = {}
        self.sock: socket.socket | None = None

    # greeting and requests, one thread per connection
    def hello(self) -> dict:
        return {"event": "hello", "pid": os.getpid(), "identity": self.identity, "busy": self.busy.is_set(),
                "queued": self.jobs.qsize(), "jobs_done": self.jobs_done, "started": self.started,
                "idle_s": round(time.monotonic() - self.last_active, 1), "idle_timeout_s": self.idle_timeout_s,
                "socket": str(socket_path(runtime_dir()))}

    def handle(self, conn: socket.socket) -> None:
        lock = threading.Lock()
        stream = conn.makefile("rb")
        try:
            if not _same_user(conn):
                log.warning("refused a connection of another user")
                return
            _send(conn, self.hello(), lock)
            request = _receive(stream)
            if request is None:
                return
            kind = request.get("type")
            if kind == "status":
                _send(conn, self.hello(), lock)
            elif kind == "stop":
                log.info("stop requested")
                self.stopping.set()
                _send(conn, {"event": "stopping"}, lock)
            elif kind == "code":
                job = _Job(conn, request, lock)
                if self.stopping.is_set():
                    job.send({"event": "unavailable", "reason": "the worker is stopping"})
                    return
                if self.busy.is_set() or self.jobs.qsize():
                    job.send({"event": "queued"})
                self.jobs.put(job)
                # the client's end of the connection: its close (Ctrl-C) cancels the job
                while not job.finished.is_set():
                    ready, _, _ = select.select([conn], [], [], 0.5)
                    if ready and not conn.recv(4096):
                        job.cancelled.set()
                        break
                job.finished.wait()
            else:
                _send(conn, {"event": "error", "kind": "protocol", "message": "unknown request"}, lock)
        except (OSError, ValueError) as err:
            log.info("a connection ended early (%s)", type(err).__name__)
        finally:
            try:
                stream.close()
                conn.close()
            except OSError:
                pass

    def accept_loop(self) -> None:
        assert self.sock is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    return
                time.sleep(0.1)
                continue
            conn.settimeout(None)
            threading.Thread(target=self.handle, args=(conn,), name="rupture-coder-worker-conn", daemon=True).start()

    # jobs, one at a time, in the main thread
    def run_job(self, job: _Job) -> str:
        from pipeline.preprocess.deid import clear_scan_memo
        from pipeline.run import steps as lib
        from pipeline.run.local import code_corpus

        number = self.jobs_done + 1
        request = job.request
        start = time.perf_counter()
        root = logging.getLogger()
        level = int(request.get("log_level", logging.WARNING))
        forward = _Forward(job, level)
        old_level, old_cwd, old_mask = root.level, os.getcwd(), os.umask(int(request.get("umask", 0o022)))
        root.setLevel(level)
        root.addHandler(forward)
        outcome = "done"
        try:
            if job.cancelled.is_set():
                raise JobCancelled()
            job.send({"event": "accepted"})
            os.chdir(request["cwd"])
            inputs = [str(p) for p in request["inputs"]]
            if [os.path.realpath(p) for p in inputs] != request.get("inputs_resolved"):
                raise ConfigError("the inputs resolve to other files in the background worker",
                                  fix="run the command again, or use --runner inline")
            config = config_from_json(request["config"])

            steps: dict[str, float] = {}

            def check(name: str | None = None, seconds: float = 0.0) -> None:
                if name is not None:
                    steps[name] = steps.get(name, 0.0) + seconds
                if job.cancelled.is_set():
                    raise JobCancelled()

            def progress(event: str, sessions: int, turns: int) -> None:
                check()
                job.send({"event": "progress", "args": [event, sessions, turns]})

            summary = code_corpus(inputs, config, on_step=check, fresh=True, progress=progress)
            summary = {**summary, "plan_problems": [asdict(p) for p in summary.get("plan_problems", [])]}
            job.send({"event": "done", "summary": summary})
            log.info("job %d: %d input(s), %d session(s) coded, %d failed, %.2f s (%s)", number, len(inputs),
                     summary.get("coded_this_run", 0), summary.get("sessions_failed", 0),
                     time.perf_counter() - start, ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
        except JobCancelled:
            outcome = "cancelled"
            log.info("job %d: cancelled by the client after %.2f s (sessions written are kept)", number,
                     time.perf_counter() - start)
        except Exception as err:  # noqa: BLE001 - every error goes back to the client
            outcome = "error"
            message = _error_message(err)
            job.send(message)
            log.info("job %d: ended with an error (%s, %s) after %.2f s", number, message["kind"],
                     type(err).__name__, time.perf_counter() - start)
        finally:
            root.removeHandler(forward)
            root.setLevel(old_level)
            os.umask(old_mask)
            os.chdir(old_cwd)
            clear_scan_memo()  # no transcript data is kept between jobs
            lib._LAST_READ.clear()
            self.jobs_done += 1
            self.last_active = time.monotonic()
            job.finished.set()
            try:
                job.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return outcome

    def serve(self) -> str:
        """Run jobs until stopped or idle; the reason."""
        while True:
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                if self.stopping.is_set():
                    return "stop requested"
                if self.idle_timeout_s > 0 and time.monotonic() - self.last_active > self.idle_timeout_s:
                    self.stopping.set()
                    return f"idle for {self.idle_timeout_s:g} s"
                continue
            self.busy.set()
            try:
                self.run_job(job)
            finally:
                self.busy.clear()


def _same_user(conn: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):
        return True  # elsewhere the folder's mode 0700 alone keeps others out
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def config_from_json(data: dict):
    from pipeline.run.config import RunConfig

    data = dict(data)
    for key in ("roles", "columns"):
        data[key] = tuple(tuple(pair) for pair in data.get(key, ()))
    data["speaker_corrections"] = tuple(data.get("speaker_corrections", ()))
    return RunConfig(**data)


def _open_log(folder: Path) -> None:
    path = folder / LOG_NAME
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8", buffering=1))
    handler.setFormatter(logging.Formatter("%(asctime)s worker[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _warm_up(model: str | None) -> None:
    """One small synthetic session (no transcript) through the whole chain, into a temporary
    folder that is removed: the model, the encoder, spaCy, matplotlib, the writers all loaded."""
    import shutil
    import tempfile

    from pipeline.run.config import RunConfig
    from pipeline.run.local import code_corpus

    folder = Path(tempfile.mkdtemp(prefix="rupture-coder-warm-up-"))
    try:
        source = folder / "warm_up.csv"
        source.write_text(WARM_UP_CSV, encoding="utf-8")
        out = folder / "out"
        code_corpus([str(source)], RunConfig(out=str(out), model=model, phi="warn", cache_dir=str(out / ".cache")),
                    fresh=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """The worker process (``python -m pipeline.run.worker``; started by :func:`start`)."""
    import argparse
    import fcntl

    parser = argparse.ArgumentParser(prog="rupture-coder-worker")
    parser.add_argument("--model", default=None)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S)
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)

    def tell(message: dict) -> None:
        if args.ready_fd is None:
            return
        try:
            os.write(args.ready_fd, (json.dumps(message) + "\n").encode())
            os.close(args.ready_fd)
        except OSError:
            pass
        args.ready_fd = None

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the client's, not ours
    server = Server(args.model, args.idle_timeout)
    signal.signal(signal.SIGTERM, lambda *_: server.stopping.set())
    try:
        folder = private_dir(create=True)
        path = socket_path(folder)
    except RuptureCoderError as err:
        tell({"error": {"kind": "rupture", **{k: v for k, v in _error_message(err).items() if k != "event"}}})
        return 2
    lock_fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        tell({"error": {"kind": "busy"}})
        return 1
    _open_log(folder)
    begun = time.perf_counter()
    log.info("starting (rupture-coder %s, idle timeout %g s)", __version__, args.idle_timeout)
    bound_inode = None
    try:
        try:
            logging.captureWarnings(True)
            server.identity = identity(args.model)
            _warm_up(args.model)
        except Exception as err:  # noqa: BLE001 - told to `worker start`, which prints it
            log.info("start failed (%s)", type(err).__name__)
            message = _error_message(err)
            tell({"error": {k: v for k, v in message.items() if k not in ("event", "traceback")}})
            return 1
        path.unlink(missing_ok=True)  # a stale socket of a killed worker (we hold the lock)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        bound_inode = os.stat(path).st_ino
        sock.listen(8)
        sock.settimeout(0.5)
        server.sock = sock
        pid_tmp = folder / f".{PID_NAME}.{os.getpid()}"
        fd = os.open(pid_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(pid_tmp, folder / PID_NAME)
        threading.Thread(target=server.accept_loop, name="rupture-coder-worker-accept", daemon=True).start()
        model = server.identity["model"]
        log.info("ready in %.1f s (model %s/%s)", time.perf_counter() - begun, model["name"], model["version"])
        server.last_active = time.monotonic()
        tell({"ready": True, "pid": os.getpid()})
        reason = server.serve()
        log.info("exiting: %s, %d job(s) done", reason, server.jobs_done)
        while True:  # jobs that came in meanwhile: their clients code in process
            try:
                job = server.jobs.get_nowait()
            except queue.Empty:
                break
            job.send({"event": "unavailable", "reason": "the worker stopped"})
            job.finished.set()
        return 0
    finally:
        try:
            if bound_inode is not None and os.stat(path).st_ino == bound_inode:
                path.unlink()
        except OSError:
            pass
        try:
            if (folder / PID_NAME).read_text(encoding="ascii").strip() == str(os.getpid()):
                (folder / PID_NAME).unlink()
        except OSError:
            pass
        os.close(lock_fd)


if __name__ == "__main__":
    from pipeline.run.worker import main as _main  # the module's own functions, not __main__'s copies

    sys.exit(_main())
