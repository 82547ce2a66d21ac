"""Review in the report (issue #14): headless Chromium, driven over the DevTools protocol, reviews
turns of a real run's session page by clicks and keys, keeps the work across a reload, saves the
review sheet; `review import` reads it and `agreement` compares two annotators. No server, and
the page makes no network request."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.io.files import safe_filename
from pipeline.run import steps as lib

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package chromium); CI installs it"),
]
CSV_TEXT = (
    "session_id,turn,speaker,start,end,text\n"
    "s-1,1,T,0,6,What would you like to focus on today?\n"
    "s-1,2,C,6,12,I don't know. Whatever you think.\n"
    "s-1,3,T,12,20,It sounds like it's hard to choose. Can we stay with that for a moment?\n"
    "s-1,4,C,20,30,\"This is pointless, we keep going over the same thing.\"\n"
    "s-1,5,T,30,40,You're right to say so. I may have been pushing my agenda.\n"
    "s-1,6,C,40,48,Maybe. I guess.\n"
)


class Page:
    """One tab of a headless Chromium, driven over the DevTools protocol (websockets)."""

    def __init__(self, ws, session: str):
        self.ws, self.session, self.n, self.events = ws, session, 0, []

    async def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        await self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == self.n:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    async def js(self, expression: str):
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(result["exceptionDetails"])
        return result["result"].get("value")

    async def wait(self, expression: str, timeout: float = 20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    async def key(self, key: str):
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "text": key if kind == "keyDown" else "",
                                                       "code": f"Key{key.upper()}",
                                                       "windowsVirtualKeyCode": ord(key.upper())})

    async def click(self, selector: str):
        box = await self.js(f"(function(){{var e=document.querySelector({json.dumps(selector)});"
                            "e.scrollIntoView({block:'center'});var r=e.getBoundingClientRect();"
                            "return [r.left+r.width/2, r.top+r.height/2];})()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                         "clickCount": 1})

    async def open(self, url: str):
        await self.send("Page.navigate", {"url": url})
        await self.wait("document.readyState === 'complete' && document.body.getAttribute('data-ready') === '1' "
                        "&& document.getElementById('review-bar').getAttribute('data-ready') === '1'")


async def _review(url: str, downloads: Path, profile: Path, actions) -> dict:
    import websockets

    proc = subprocess.Popen([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "DevTools listening on" not in line:
            line = proc.stderr.readline()
            assert line, "chromium exited before its DevTools endpoint came up"
        ws_url = line.split("DevTools listening on", 1)[1].strip()
        async with websockets.connect(ws_url, max_size=2**26) as ws:
            page = Page(ws, "")
            target = await page.send("Target.createTarget", {"url": "about:blank"}, session=False)
            attached = await page.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                                       session=False)
            page.session = attached["sessionId"]
            await page.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads),
                                                            "eventsEnabled": True}, session=False)
            for domain in ("Page", "Runtime", "Network"):
                await page.send(f"{domain}.enable")
            await page.open(url)
            result = await actions(page)
            requests = [e["params"]["request"]["url"] for e in page.events
                        if e.get("method") == "Network.requestWillBeSent"]
            errors = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown"]
            await asyncio.sleep(0.5)  # let the download finish writing
            try:
                await page.send("Browser.close", session=False)  # a clean exit writes localStorage to the profile
            except Exception:  # noqa: BLE001 - the connection closes as the browser exits
                pass
            return {"result": result, "requests": requests, "errors": errors}
    finally:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _saved(downloads: Path, timeout: float = 20.0) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = [p for p in downloads.glob("review-*.csv")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError("no review file downloaded")


@pytest.fixture(scope="module")
def run_dir(tiny_bundle, tmp_path_factory, code_with_tasks) -> Path:
    folder = tmp_path_factory.mktemp("review-run")
    (folder / "in.csv").write_text(CSV_TEXT, encoding="utf-8")
    out = folder / "run"
    config = lib.RunConfig(out=str(out), model=str(tiny_bundle), cache_dir=str(out / ".cache"))
    summary = code_with_tasks([folder / "in.csv"], config)
    assert summary["sessions_coded"] == 1
    return out


def test_report_review_by_clicks_and_keys_then_import_and_agreement(run_dir, tmp_path):
    from pipeline.review.agreement import agreement
    from pipeline.review.importing import import_files, write_human_layer

    page_path = run_dir / "report" / f"{safe_filename('s-1')}.html"
    url = page_path.as_uri()

    async def alice(page: Page):
        await page.click("#review-toggle")  # a real click on the button
        assert await page.js("document.body.classList.contains('reviewing')")
        total = await page.js("document.querySelectorAll('.rv').length")
        await page.key("a")  # accept the model's codes of the most uncertain turn, go on
        await page.key("n")  # set the next one to none
        # correct a client turn by clicks: withdrawal with a marker
        await page.js("(function(){var s=document.querySelector(\"#turn-5 .rv-single\");"
                      "s.value='withdrawal';s.dispatchEvent(new Event('change',{bubbles:true}));})()")
        await page.click("#turn-5 .rv-code[data-family='withdrawal'] input[value='withdrawal.minimal_response']")
        reviewed = int(await page.js("document.getElementById('review-bar').getAttribute('data-reviewed')"))
        await page.key("s")
        return {"total": total, "reviewed": reviewed}

    downloads = tmp_path / "alice"
    downloads.mkdir()
    run = asyncio.run(_review(url, downloads, tmp_path / "p1", alice))
    assert run["errors"] == []
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in run["requests"]), run["requests"]
    assert run["result"]["total"] == 6 and run["result"]["reviewed"] == 3
    sheet = _saved(downloads)
    rows = list(csv.DictReader(open(sheet, encoding="utf-8-sig")))
    assert len(rows) == 3 and {r["item_id"] for r in rows} >= {"s-1:5"}
    turn5 = next(r for r in rows if r["turn"] == "5")
    assert (turn5["rupture"], turn5["markers"]) == ("withdrawal", "withdrawal.minimal_response")
    assert not any(r["text"] for r in rows)  # the sheet carries codes, not the transcript

    # the work survives a reload (same browser profile), and is not yet saved twice
    async def reload(page: Page):
        await page.click("#review-toggle")
        return int(await page.js("document.getElementById('review-bar').getAttribute('data-reviewed')"))

    again = asyncio.run(_review(url, tmp_path, tmp_path / "p1", reload))
    assert again["result"] == 3

    # a second annotator, in another profile: every turn set to none with the keyboard
    async def bob(page: Page):
        await page.click("#review-toggle")
        for _ in range(6):
            await page.key("n")
        await page.key("s")
        return int(await page.js("document.getElementById('review-bar').getAttribute('data-reviewed')"))

    downloads_b = tmp_path / "bob"
    downloads_b.mkdir()
    assert asyncio.run(_review(url, downloads_b, tmp_path / "p2", bob))["result"] == 6

    layers = []
    for name, folder in (("alice", downloads), ("bob", downloads_b)):
        result = import_files([_saved(folder)], name, run_dir)
        write_human_layer(tmp_path / f"{name}.jsonl", result)
        layers.append(tmp_path / f"{name}.jsonl")
    report = agreement(layers, run_dir)
    assert {"human:alice", "human:bob"} <= set(report["coders"])
    pair = [r for r in report["rows"] if set(r["coders"]) == {"human:alice", "human:bob"}]
    assert pair, report["rows"]
    # the report with both human layers beside the model (issue #14): agreement in the header,
    # differing turns marked, episodes from the human codes
    from typer.testing import CliRunner

    from pipeline.cli._app import app

    ran = CliRunner().invoke(app, ["report", str(run_dir), "--human", str(layers[0]), "--human", str(layers[1]),
                                   "--out", str(tmp_path / "side")], env={"COLUMNS": "200"})
    assert ran.exit_code == 0, ran.output
    assert "1 session(s) with human codes" in ran.stdout
    side = (tmp_path / "side" / page_path.name).read_text(encoding="utf-8")
    assert "Human vs model: rupture" in side and "Human (alice, bob)" in side
    rows_side = [json.loads(x) for x in (tmp_path / "side" / "sessions.jsonl").read_text().splitlines()]
    assert rows_side[0]["human_agreement"]["rupture"]["turns"] == 3  # bob coded every client turn
    assert (run_dir / "report" / page_path.name).read_text(encoding="utf-8") != side  # the model's report is kept
    whole = next(r for r in pair if r["layer"] == "rupture" and r["code"] == "*")
    assert whole["n_items"] == sum(r["speaker"] == "client" for r in rows)  # the client turns both coded
    assert whole["positives"] == {"human:alice": 1, "human:bob": 0}  # alice's withdrawal at turn 5


def test_report_review_data_is_in_every_session_page(run_dir):
    html = (run_dir / "report" / f"{safe_filename('s-1')}.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1))
    review = data["review"]
    assert review["session_id"] == "s-1" and len(review["items"]) == 6
    assert {layer["name"] for layer in review["layers"]} == {"rupture", "markers", "repair", "strategies"}
    multi = [c for layer in review["layers"] if layer["kind"] == "multi" for c in layer["codes"]]
    assert multi and all(c["description"] and c["family"] for c in multi)  # definitions at hand
