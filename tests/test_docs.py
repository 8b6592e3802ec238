"""The README and docs/ stay true: relative links reach files, `#anchors` reach headings (GitHub's
slugs), the config/*.yaml and bench/*.py paths they name exist, and the README stays short."""

import re
from pathlib import Path

import pytest

from conftest import REPO

README_MAX_LINES = 250
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.I)
NAMED_PATH = re.compile(r"(?<![\w./-])((?:config/[\w.-]+\.yaml)|(?:bench/[\w.-]+\.py))\b")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lowercase, punctuation dropped (except
    ``-`` and ``_``), spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page has: its headings' slugs (repeats get -1, -2, ... as on GitHub) and
    explicit ``<a id=...>`` targets."""
    seen: dict[str, int] = {}
    found = set(HTML_ID.findall(text))
    for _, title in HEADING.findall(FENCE.sub("", text)):
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _blank(match: re.Match) -> str:
    """The match replaced by spaces and its own newlines, so offsets and line numbers hold."""
    return re.sub(r"[^\n]", " ", match.group(0))


def check_markdown(page: Path, root: Path = REPO) -> list[str]:
    """What is broken in one Markdown page: relative links to missing files, ``#anchors`` with
    no such heading in their page, and config/*.yaml or bench/*.py paths (in code or links,
    from the repository root) that do not exist. One line per problem, ``page:line: what``."""
    text = page.read_text()
    name = page.relative_to(root) if page.is_relative_to(root) else page
    problems = []
    code = [*FENCE.finditer(text), *CODE_SPAN.finditer(FENCE.sub(_blank, text))]
    prose = CODE_SPAN.sub(_blank, FENCE.sub(_blank, text))
    for match in LINK.finditer(prose):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        where = f"{name}:{_line(text, match.start())}"
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            problems.append(f"{where}: broken link '{target}' (no file {file_part})")
            continue
        if anchor and anchor not in anchors(linked.read_text()):
            problems.append(f"{where}: broken anchor '{target}' (no heading '#{anchor}' in "
                            f"{linked.name})")
    named = [(m.start(), m.group(0)) for m in code] + [(m.start(), m.group(1))
                                                       for m in LINK.finditer(prose)]
    for start, snippet in named:
        for path in NAMED_PATH.findall(snippet):
            if not (root / path).exists():
                problems.append(f"{name}:{_line(text, start)}: names '{path}', which does not "
                                "exist")
    return problems


PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_anchor_and_named_path_resolves(page):
    problems = check_markdown(page)
    assert not problems, "\n".join(problems)


def test_the_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert "](docs/img/headline.png)" in "\n".join(lines)
    for marker in ("default headline", "cpu-study headline"):
        assert f"<!-- {marker} -->" in lines and f"<!-- /{marker} -->" in lines


def test_the_checker_reports_a_broken_link_a_broken_anchor_and_a_missing_path(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config/there.yaml").write_text("seeds: [0]\n")
    (tmp_path / "other.md").write_text("# Other page\n\n## A section (`with code`)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "Fine: [other](other.md), [its section](other.md#a-section-with-code), [up](#page),\n"
        "`config/there.yaml`, [https](https://example.org/#nowhere).\n\n"
        "Broken: [gone](missing.md) and [no such heading](other.md#no-such-heading),\n"
        "and `bench/not_here.py --fast`.\n\n"
        "```\n[not a link](ignored.md)\n```\n")
    problems = check_markdown(page, root=tmp_path)
    assert problems == [
        "page.md:6: broken link 'missing.md' (no file missing.md)",
        "page.md:6: broken anchor 'other.md#no-such-heading' (no heading '#no-such-heading' in "
        "other.md)",
        "page.md:7: names 'bench/not_here.py', which does not exist",
    ], "\n".join(problems)


def test_slugs_follow_github():
    assert slug("A one-machine study (`config/cpu-study.yaml`)") == (
        "a-one-machine-study-configcpu-studyyaml")
    assert slug("Align: the weak model's arms, the ceiling and the W2S students") == (
        "align-the-weak-models-arms-the-ceiling-and-the-w2s-students")
    assert slug("GPU training throughput (`bench/gpu_smoke.py`)") == (
        "gpu-training-throughput-benchgpu_smokepy")
    assert anchors("# Results\n\n## Results\n") == {"results", "results-1"}
