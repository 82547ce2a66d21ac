"""CLI commands ``worker start``, ``worker status`` and ``worker stop``: the background worker of
:mod:`pipeline.run.worker`, which keeps the model loaded so that ``rupture-coder code`` on one
session answers in seconds."""

from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer
from rich.markup import escape

from pipeline.cli._app import app, console, user_errors
from pipeline.errors import ConfigError

worker_app = typer.Typer(help="A background worker that keeps the model loaded: one session coded in seconds.",
                         no_args_is_help=True, add_completion=False)
app.add_typer(worker_app, name="worker")


def _describe(hello: dict) -> str:
    from pipeline.run.worker import describe_model

    timeout = hello.get("idle_timeout_s") or 0
    idle = f"idle {hello.get('idle_s', 0):.0f} s of {timeout / 60:g} min" if timeout else "no idle timeout"
    busy = "busy" if hello.get("busy") else idle
    return (f"pid {hello.get('pid')}, {describe_model(hello.get('identity', {}))}; {busy}; "
            f"{hello.get('jobs_done', 0)} job(s) done; socket {hello.get('socket')}")


@worker_app.command("start")
def start(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model bundle path or NAME/VERSION (default: the shipped model); `code` uses the worker only with the same --model.")] = None,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", help="Minutes without a job after which the worker exits (0: never).")] = 30.0,
) -> None:
    """Start the background worker (detached) and return once it is ready: the model, the
    encoder and the de-identification gate's NER loaded, for `code --runner auto`."""
    from pipeline.run import worker

    with user_errors():
        if idle_timeout < 0:
            raise ConfigError("--idle-timeout must be 0 (never) or more minutes", found=str(idle_timeout))
        begun = time.perf_counter()
        hello = worker.start(model, idle_timeout * 60)
    if hello.get("already"):
        console.print(f"already running: {escape(_describe(hello))}", highlight=False)
    else:
        console.print(f"worker ready in {time.perf_counter() - begun:.1f} s: {escape(_describe(hello))}",
                      highlight=False)


@worker_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether a worker runs, for which model, idle or busy (exit status 1 when none runs)."""
    from pipeline.run import worker

    with user_errors():
        hello = worker.status()
    if as_json:
        console.print_json(json.dumps({"running": hello is not None, **(hello or {})}))
    elif hello is None:
        console.print("no worker running (start one with `rupture-coder worker start`)", highlight=False)
    else:
        console.print(f"running: {escape(_describe(hello))}", highlight=False)
    if hello is None:
        raise typer.Exit(1)


@worker_app.command("stop")
def stop() -> None:
    """Stop the worker (after the job it is running, if any)."""
    from pipeline.run import worker

    with user_errors():
        pid = worker.stop()
    console.print("no worker running" if pid is None else f"worker stopped (pid {pid})", highlight=False)
