"""The documentation's links: every relative link and image in README.md and docs/**/*.md points
at a file that exists and, with a ``#fragment``, at a heading of that file (GitHub's anchors).
The commands of those pages are checked in test_cli.py."""

import glob
import os
import re
import unicodedata

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PAGES = ["README.md"] + sorted(os.path.relpath(path, REPO) for path in glob.glob(
    os.path.join(REPO, "docs", "**", "*.md"), recursive=True))
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text):
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def github_slug(heading):
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation and symbols
    removed (letters, digits, marks, ``_``, ``-`` and spaces kept), spaces turned into ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(text):
    """Every heading anchor of a Markdown text; a repeated slug gets ``-1``, ``-2``, … as on GitHub."""
    seen, result = {}, set()
    for line in _FENCE.sub("", text).splitlines():
        match = re.match(r" {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def dead_links(page, text):
    """(target, reason) for each relative link of ``text`` (the page at REPO-relative ``page``)
    whose file is missing or whose ``#fragment`` names no heading of the target page."""
    dead = []
    for target in _LINK.findall(_prose(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        if not path:  # a heading of this page
            if fragment not in anchors(text):
                dead.append((target, "no such heading"))
            continue
        resolved = os.path.normpath(os.path.join(REPO, os.path.dirname(page), path))
        if not resolved.startswith(REPO + os.sep) or not os.path.exists(resolved):
            dead.append((target, "no such file"))
        elif fragment and resolved.endswith(".md"):
            if fragment not in anchors(open(resolved, encoding="utf-8").read()):
                dead.append((target, "no such heading"))
    return dead


@pytest.mark.parametrize(("heading", "slug"), [
    ("In a notebook: `model.fit`", "in-a-notebook-modelfit"),
    ("Real MNIST: paper 1's scorer", "real-mnist-paper-1s-scorer"),
    ("Exports, atomic on any filesystem", "exports-atomic-on-any-filesystem"),
    ("Rank collapse watch (paper 2, §3.3 and Figure 2 (b–d))",
     "rank-collapse-watch-paper-2-33-and-figure-2-bd"),
    ("The `--snake_case` [flags](x.md)", "the---snake_case-flags"),
])
def test_github_slug_matches_githubs_anchors(heading, slug):
    assert github_slug(heading) == slug


def test_anchors_number_repeated_headings_and_skip_code_blocks():
    text = "# A\n## Notes\n```bash\n# not a heading\n```\n### Notes\n"
    assert anchors(text) == {"a", "notes", "notes-1"}


def test_dead_links_are_found():
    text = ("[ok](docs/numerics.md) [gone](docs/nothing.md) [anchor](docs/numerics.md#kernels) "
            "[bad anchor](docs/numerics.md#no-such) [web](https://example.com/x) "
            "`[code](missing.md)` ![img](docs/missing.png) [self](#a) [no](#b)\n# A\n")
    assert dead_links("README.md", text) == [("docs/nothing.md", "no such file"),
                                             ("docs/numerics.md#no-such", "no such heading"),
                                             ("docs/missing.png", "no such file"),
                                             ("#b", "no such heading")]


def test_the_pages_are_the_readme_and_every_docs_page():
    assert "README.md" in PAGES and "docs/numerics.md" in PAGES and len(PAGES) >= 10


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    text = open(os.path.join(REPO, page), encoding="utf-8").read()
    assert dead_links(page, text) == []


def test_every_docs_page_is_reachable_from_the_readme():
    """Following links from README.md reaches every docs page (none is orphaned)."""
    reached, todo = set(), ["README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        text = open(os.path.join(REPO, page), encoding="utf-8").read()
        for target in _LINK.findall(_prose(text)):
            path = target.partition("#")[0]
            resolved = os.path.normpath(os.path.join(REPO, os.path.dirname(page), path))
            if path.endswith(".md") and os.path.isfile(resolved):  # dead ones: test above
                todo.append(os.path.relpath(resolved, REPO))
    assert set(PAGES) - reached == set()
