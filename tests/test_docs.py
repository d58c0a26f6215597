"""Every ```python block in docs/*.md runs: each page's blocks in order, in a fresh namespace.

Blocks that are not meant to run (shell commands, SLURM scripts, files read from a run
directory) use other fences (```bash, ```text). Keep the blocks tiny (width ≤ 8, small t1, few
save points): this whole file should stay well under a minute.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import matplotlib
import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, source) of each ```python block of `page`."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


PAGES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


def test_docs_have_code():
    assert DOCS.is_dir(), DOCS
    assert len(PAGES) >= 5, [p.name for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_runs(page, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # anything a block writes lands in a temporary directory
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # a real module, so that classes defined in a block (equinox dataclasses) find it
    module = types.ModuleType(f"_gradflow_docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for line, source in python_blocks(page):
        code = compile(source, f"{page}:{line}", "exec")
        try:
            exec(code, namespace)
        except Exception as e:  # name the block, keep the traceback
            raise AssertionError(f"{page.name}, block at line {line} failed: {e!r}") from e


def test_gallery_entries_have_small_pngs():
    """docs/gallery.md: one line per entry, each with its PNG; the folder stays small."""
    text = (DOCS / "gallery.md").read_text(encoding="utf-8")
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)  # the template line in the comment
    images = re.findall(r"^- .*!\[[^\]]*\]\((gallery/[^)]+\.png)\)$", text, re.M)
    assert images, "no gallery entries found"
    missing = [p for p in images if not (DOCS / p).is_file()]
    assert not missing, missing
    total = sum(f.stat().st_size for f in (DOCS / "gallery").glob("*.png"))
    assert total < 1.5e6, f"docs/gallery holds {total / 1e6:.2f} MB of PNGs (limit 1.5 MB)"
