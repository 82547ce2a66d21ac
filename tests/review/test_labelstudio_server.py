"""A real Label Studio round trip: generated config and tasks in, two annotators' codes out,
through the importer. Plus a fast test of the importer against an export recorded from it.

The server (label-studio 1.23.2) needs its own virtualenv: it pins python-json-logger 2.0.4,
which prefect's requirement excludes. The session fixture builds it once under
``~/.cache/rupture-coder-tests/ls-venv`` (or ``$RUPTURE_CODER_TEST_CACHE``) and reuses it while
it works; the server runs headless, on loopback only, with every telemetry switch off
(../shared/STACK-NOTES.md). Set ``RUPTURE_CODER_RECORD_LS_EXPORT=PATH`` to save the export the
server gave, e.g. to refresh ``data/ls_export_recorded.json``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.review.batch import export_batch
from pipeline.review.importing import import_files
from test_review_export import rec, write_run

LS_VERSION = "1.23.2"
RECORDED = Path(__file__).parent / "data" / "ls_export_recorded.json"
USER, PASSWORD, TOKEN = "tester@example.com", "rc-test-password-1", "rctesttoken12345"

# An invented session (never transcript text from real data).
LS_RECORDS = [
    rec("r1", 0, "therapist", "Last week we agreed to try the breathing exercise. How did it go?", repair="none", unc=0.1),
    rec("r1", 1, "client", "I told you already, it doesn't work for me.", rupture="confrontation",
        markers=["confrontation.rejects_intervention"], unc=0.4),
    rec("r1", 2, "therapist", "You're right, I pushed that idea too quickly. What would help more today?",
        repair="repair", strategies=["repair.acknowledge_contribution"], unc=0.3),
    rec("r1", 3, "client", "I don't know. Maybe talk about work.", rupture="none", unc=0.2),
]


def choice(name, *values):
    return {"from_name": name, "to_name": "text", "type": "choices", "value": {"choices": list(values)}}


FIRST_CLIENT = [choice("speaker", "client"), choice("rupture", "confrontation"),
                choice("markers", "confrontation.rejects_intervention", "withdrawal.denial"),
                {"from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": ["test note"]}}]
SECOND_CLIENT = [choice("speaker", "client"), choice("rupture", "withdrawal"), choice("markers", "withdrawal.denial")]
FIRST_THERAPIST = [choice("speaker", "therapist"), choice("repair", "repair"),
                   choice("strategies", "repair.acknowledge_contribution", "repair.change_task_or_goal")]


def expected(first: str, second: str) -> dict[str, list[tuple]]:
    return {
        f"human:ls-{first}": sorted([("r1", 1, "rupture", "confrontation"),
                                     ("r1", 1, "markers", "confrontation.rejects_intervention"),
                                     ("r1", 1, "markers", "withdrawal.denial"), ("r1", 2, "repair", "repair"),
                                     ("r1", 2, "strategies", "repair.acknowledge_contribution"),
                                     ("r1", 2, "strategies", "repair.change_task_or_goal")]),
        f"human:ls-{second}": sorted([("r1", 1, "rupture", "withdrawal"), ("r1", 1, "markers", "withdrawal.denial")]),
    }


def by_source(records) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for r in records:
        out.setdefault(r["source"], []).append((r["session_id"], r["turn"], r["layer"], r["code"]))
    return {k: sorted(v) for k, v in out.items()}


def test_labelstudio_recorded_export_imports(tmp_path):
    """The export recorded from the real server (see the module docstring)."""
    tasks = json.loads(RECORDED.read_text(encoding="utf-8"))
    users = sorted({str(a["completed_by"]) for t in tasks for a in t["annotations"]})
    assert len(users) == 2
    run = write_run(tmp_path / "run", LS_RECORDS)
    for run_dir in (None, run):
        result = import_files([RECORDED], run_dir=run_dir)
        assert by_source(result.records) == expected(*users)
        assert [n["note"] for n in result.notes] == ["test note"]


# ---------------------------------------------------------------- the real server

def cache_dir() -> Path:
    return Path(os.environ.get("RUPTURE_CODER_TEST_CACHE") or Path.home() / ".cache" / "rupture-coder-tests")


def _venv_works(venv: Path) -> bool:
    if not (venv / f"ok-{LS_VERSION}").exists() or not (venv / "bin" / "label-studio").exists():
        return False
    probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import importlib.metadata as m; print(m.version('label-studio'))"],
                           capture_output=True, text=True, timeout=120)
    return probe.returncode == 0 and probe.stdout.strip() == LS_VERSION


@pytest.fixture(scope="session")
def ls_venv() -> Path:
    """The server's own virtualenv, built once and reused while it works."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "ls-venv"
    with open(root / "ls-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _venv_works(venv):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={LS_VERSION}"],
                             capture_output=True, text=True, timeout=1500)
        if pip.returncode != 0:
            errors = [line for line in pip.stderr.splitlines() if line.startswith("ERROR")] or pip.stderr.splitlines()[-3:]
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"pip cannot install label-studio=={LS_VERSION} here: {' | '.join(errors)}")
        (venv / f"ok-{LS_VERSION}").write_text("built by tests/review/test_labelstudio_server.py\n")
    return venv


def ls_env(data: Path, home: Path) -> dict:
    """Headless, loopback-only, no telemetry (STACK-NOTES: Label Studio as a real server in tests)."""
    env = dict(os.environ)
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data), "LABEL_STUDIO_USERNAME": USER, "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": TOKEN, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false", "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_SENTRY_DSN": "", "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        **{f"XDG_{k}_HOME": str(home / k.lower()) for k in ("DATA", "CONFIG", "CACHE", "STATE")},
    })
    return env


@pytest.fixture(scope="session")
def ls_data_template(ls_venv, tmp_path_factory) -> Path:
    """A data folder initialised once per test session (migrations, user and token)."""
    base = tmp_path_factory.mktemp("ls-template")
    data = base / "data"
    init = subprocess.run([str(ls_venv / "bin" / "label-studio"), "init", "--quiet", "--username", USER,
                           "--password", PASSWORD, "--user-token", TOKEN, "--enable-legacy-api-token",
                           "--data-dir", str(data)], env=ls_env(data, base / "xdg"), capture_output=True,
                          text=True, timeout=600, cwd=base)
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def whoami(url: str) -> dict | None:
    request = urllib.request.Request(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read()) if response.status == 200 else None
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Server:
    url: str
    token: str


@pytest.fixture
def ls_server(ls_venv, ls_data_template, tmp_path):
    """A started server on a copy of the template data folder; SIGTERM when the test ends."""
    data = tmp_path / "ls-data"
    shutil.copytree(ls_data_template, data)  # includes data/.env
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "ls.log", "wb")
    proc = subprocess.Popen([str(ls_venv / "bin" / "label-studio"), "start", "--no-browser", "--internal-host",
                             "127.0.0.1", "--port", str(port), "--data-dir", str(data)],
                            env=ls_env(data, tmp_path / "xdg"), stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while (me := whoami(url)) is None or me.get("email") != USER:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"Label Studio did not become ready on {url}:\n"
                            + (tmp_path / "ls.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield Server(url, TOKEN)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_labelstudio_server_round_trip(ls_server, tmp_path):
    from label_studio_sdk import LabelStudio

    run = write_run(tmp_path / "run", LS_RECORDS)
    items, (tasks_path, config_path) = export_batch(run, "label-studio", tmp_path / "batch.json", strategy="all")
    ls = LabelStudio(base_url=ls_server.url, api_key=ls_server.token)
    me = ls.users.whoami()
    project = ls.projects.create(title="rupture-coder review test", label_config=config_path.read_text(encoding="utf-8"))
    imported = ls.projects.import_tasks(id=project.id, request=json.loads(tasks_path.read_text(encoding="utf-8")),
                                        return_task_ids=True)
    assert len(imported.task_ids) == len(items) == 4
    tasks = {t["data"]["item_id"]: t for t in ls.projects.exports.as_json(project.id)}
    assert set(tasks) == {item.item_id for item in items}
    assert all(len(t["predictions"]) == 1 for t in tasks.values())  # the model's pre-annotations arrived
    second = ls.users.create(username="coder2", email="coder2@example.com", password=PASSWORD)
    ls.annotations.create(id=tasks["r1:1"]["id"], result=FIRST_CLIENT, lead_time=2.5)
    ls.annotations.create(id=tasks["r1:1"]["id"], result=SECOND_CLIENT, completed_by=second.id, lead_time=3.5)
    ls.annotations.create(id=tasks["r1:2"]["id"], result=FIRST_THERAPIST, lead_time=4.0)
    export = b"".join(ls.projects.exports.download_sync(project.id, export_type="JSON"))
    path = tmp_path / "export.json"
    path.write_bytes(export)
    if os.environ.get("RUPTURE_CODER_RECORD_LS_EXPORT"):
        shutil.copyfile(path, os.environ["RUPTURE_CODER_RECORD_LS_EXPORT"])
    exported = json.loads(export)
    assert sorted(t["data"]["item_id"] for t in exported) == ["r1:1", "r1:2"]  # only annotated tasks
    result = import_files([path], run_dir=run)
    assert by_source(result.records) == expected(str(me.id), str(second.id))
    assert {c.source for c in result.codings if c.turn == 1} == {f"human:ls-{me.id}", f"human:ls-{second.id}"}
    assert [n["note"] for n in result.notes] == ["test note"]
