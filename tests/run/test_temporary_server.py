"""Prefect's temporary API server is started quiet: other libraries' records (sqlalchemy's pool
logging a CancelledError traceback when the server is stopped at the end of a run) stay off the
terminal, so the run's own last line (its summary or its error) is the last thing a user sees."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from flows._glue import QUIET_SERVER_ENV, bind_temporary_server, temporary_server_env

# What the server process does with its logging: Prefect's own configuration, then records from
# sqlalchemy's pool (as at shutdown) and from Prefect's server loggers.
SERVER_LOGGING = """
import logging
from prefect.logging.configuration import setup_logging
setup_logging()
try:
    raise RuntimeError("pool-canary-cause")
except RuntimeError:
    logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool").error("pool-canary", exc_info=True)
logging.getLogger("prefect.server.services").error("server-canary")
"""


def _server_stderr(env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", SERVER_LOGGING], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in QUIET_SERVER_ENV}


def test_quiet_server_env_drops_third_party_tracebacks_and_keeps_prefects_own_errors():
    loud = _server_stderr(_plain_env())
    assert "pool-canary" in loud and "Traceback" in loud, "control: Prefect's defaults print the pool's error"
    quiet = _server_stderr(temporary_server_env(_plain_env()))
    assert "pool-canary" not in quiet and "Traceback" not in quiet
    assert "server-canary" in quiet  # the server's own errors still reach the terminal


def test_quiet_server_env_keeps_a_users_explicit_value():
    assert temporary_server_env({"PREFECT_LOGGING_ROOT_LEVEL": "DEBUG", "X": "1"}) == {
        "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG", "X": "1"}
    assert temporary_server_env({"X": "1"})["PREFECT_LOGGING_ROOT_LEVEL"] == "CRITICAL"


def test_bound_temporary_server_starts_with_the_quiet_env_and_this_process_is_untouched(monkeypatch):
    from prefect.server.api import server as srv

    import flows._glue as glue

    started = {}

    def fake_popen(*args, **kwargs):
        started.update(kwargs, command=list(args[0] if args else kwargs["args"]))
        return object()

    monkeypatch.setattr(glue.subprocess, "Popen", fake_popen)
    monkeypatch.delenv("PREFECT_LOGGING_ROOT_LEVEL", raising=False)
    bind_temporary_server()
    bind_temporary_server()  # idempotent
    assert threading.current_thread() is threading.main_thread()
    server = object.__new__(srv.SubprocessASGIServer)  # not registered: no real server is touched
    server.port = 8123
    srv.SubprocessASGIServer._run_uvicorn_command(server)
    assert "uvicorn" in started["command"]
    assert started["env"]["PREFECT_LOGGING_ROOT_LEVEL"] == "CRITICAL"
    assert started.get("preexec_fn") is not None or not sys.platform.startswith("linux")
    assert "PREFECT_LOGGING_ROOT_LEVEL" not in os.environ
    assert srv.subprocess is subprocess or getattr(srv.subprocess, "Popen", None) is subprocess.Popen


def test_review_round_binds_its_server_before_the_flow_runs(monkeypatch):
    import flows.review_round as flow

    calls = []
    monkeypatch.setattr(flow, "bind_temporary_server", lambda: calls.append("bind"))
    monkeypatch.setattr(flow, "review_round", lambda config: calls.append(("flow", config)) or {"ok": 1})
    assert flow.run_review_round("CONFIG") == {"ok": 1}
    assert calls == ["bind", ("flow", "CONFIG")]
