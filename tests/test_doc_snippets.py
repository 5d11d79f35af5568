"""The ```python blocks of README.md and docs/ run, in order, page by page (one namespace per page).

A block is skipped only when its first line is a visible marker comment: ``# not run by the tests: REASON``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIP = "# not run by the tests:"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text that the tests run (those without the skip marker)."""
    return [block for block in FENCE.findall(text) if not block.startswith(SKIP)]


def test_the_extractor_finds_blocks_and_the_pages_have_some():
    assert python_blocks("a\n```python\nx = 1\n```\n```bash\nls\n```\n") == ["x = 1\n"]
    assert python_blocks(f"```python\n{SKIP} needs CIFAR-10\nx = 1\n```\n```python\ny = 2\n```\n") == [
        "y = 2\n"
    ]
    with_code = [p.name for p in PAGES if python_blocks(p.read_text())]
    for name in ("README.md", "getting-started.md", "virtual-batch-norm.md", "minibatch-discrimination.md"):
        assert name in with_code


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__snippet__"}
    for i, block in enumerate(python_blocks(page.read_text())):
        code = compile(block, f"{page.relative_to(ROOT)}, python block {i + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - the project's own documentation
