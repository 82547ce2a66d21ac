"""The documentation holds together: every relative link and ``#anchor`` in README.md, docs/ and
annotation_guides/ resolves, the README stays a short front page, and its Quick start still
holds the test command that .ci/run runs."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 220
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "annotation_guides").glob("*.md"))]
EXPECTED_DOCS = ("architecture.md", "formats-and-outputs.md", "review-loop.md", "privacy.md", "performance.md",
                 "deployment.md", "models.md")

FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the target ends at whitespace or ")"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked."""
    out, fenced = [], None
    for no, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line.lstrip())
        if m:
            fenced = None if fenced == m.group(1) else (fenced or m.group(1))
            continue
        if fenced is None:
            out.append((no, INLINE_CODE.sub(lambda c: " " * len(c.group(0)), line)))
    return out


def heading_text(raw: str) -> str:
    """A heading's text as GitHub renders it: links reduced to their text, markup removed."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("*", "")


def slug(text: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped (word characters, hyphens and
    spaces kept), spaces to hyphens."""
    text = heading_text(text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives a Markdown file: heading slugs (repeats get -1, -2, ...) and
    explicit <a name/id> anchors."""
    text = path.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = None
    for line in text.splitlines():
        m = FENCE.match(line.lstrip())
        if m:
            fenced = None if fenced == m.group(1) else (fenced or m.group(1))
            continue
        if fenced is not None:
            continue
        out.update(HTML_ANCHOR.findall(line))
        h = HEADING.match(line)
        if h:
            base = slug(h.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    for no, line in prose_lines(path.read_text(encoding="utf-8")):
        out += [(no, m.group(1)) for m in LINK.finditer(line)]
        ref = REF_DEF.match(line)
        if ref:
            out.append((no, ref.group(1)))
    return out


def broken_links(path: Path) -> list[str]:
    problems = []
    for no, target in links(path):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http(s):, mailto: ...: not checked (no network)
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{no}: {target}"
        if not dest.exists():
            problems.append(f"{where} (no such file)")
            continue
        if ROOT not in dest.parents and dest != ROOT:
            problems.append(f"{where} (outside the repository)")
            continue
        if anchor:
            if dest.is_dir() or dest.suffix.lower() != ".md":
                problems.append(f"{where} (anchor into a file that is not Markdown)")
            elif unquote(anchor).lower() not in anchors(dest):
                problems.append(f"{where} (no heading with that anchor)")
    return problems


def test_docs_expected_pages_exist():
    missing = [name for name in EXPECTED_DOCS if not (ROOT / "docs" / name).is_file()]
    assert not missing, missing


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_relative_links_and_anchors_resolve(path):
    assert broken_links(path) == []


def test_docs_readme_links_every_docs_page():
    targets = {target.partition("#")[0] for _, target in links(README)}
    unlinked = [name for name in EXPECTED_DOCS if f"docs/{name}" not in targets]
    assert not unlinked, f"README.md does not link {unlinked}"


def test_docs_readme_stays_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n < MAX_README_LINES, f"README.md has {n} lines; move detail into docs/"


def quick_start(text: str) -> str:
    m = re.search(r"^## Quick start\s*$(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Quick start' section"
    return m.group(1)


def test_docs_readme_quick_start_holds_the_test_command():
    blocks = re.findall(r"^```bash\n(.*?)^```", quick_start(README.read_text(encoding="utf-8")), re.S | re.M)
    assert len(blocks) == 2, "Quick start: two commands, install-and-code and install-and-test"
    assert "rupture-coder code examples/ --out runs/example" in blocks[0]
    test_command = blocks[1].strip()
    assert test_command.endswith("&& python -m pytest"), test_command
    assert 'pip install -e ".[test]"' in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # .ci/run runs the same install-and-test tail inside its fresh venv
    assert test_command.split("&& ", 2)[-1] in ci, "Quick start's test command and .ci/run disagree"


def test_docs_slug_matches_github():
    assert slug("The de-identification gate (`--phi`)") == "the-de-identification-gate---phi"
    assert slug("1-2. Code a run and export a review batch") == "1-2-code-a-run-and-export-a-review-batch"
    assert slug("Reliability of the team's real-data coding") == "reliability-of-the-teams-real-data-coding"
    assert slug("The turn record (turns.jsonl)") == "the-turn-record-turnsjsonl"
    assert slug("Where the time goes, and the knobs") == "where-the-time-goes-and-the-knobs"


def test_docs_link_checker_finds_a_broken_link(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\n## Some part\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#some-part) [self](#b) `[code](missing.md)`\n\n# B\n\n"
                    "```\n[fenced](missing.md)\n```\n[bad file](nope.md) [bad anchor](a.md#other)\n",
                    encoding="utf-8")
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "nope.md (no such file)" in problems[0] and "a.md#other (no heading" in problems[1]
