"""Sphinx configuration of the improved-gan documentation (build: ``sphinx-build -W -n docs docs/_build/html``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # document the checkout, installed or not

project = "improved-gan"
author = "the improved-gan developers"
copyright = "2026, the improved-gan developers"  # noqa: A001
release = version = "0.1.0"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "Improved Techniques for Training GANs, in PyTorch", "fixed_sidebar": True}

# API reference: docstrings in Google style (Args:, Returns:), members in source order, type hints in the text.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Every cross-reference to this package must resolve (a broken one fails the build with -W -n). References to
# other libraries cannot: the build is offline (no intersphinx inventories), so their names are not checked.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|scipy|nn|os|pathlib|collections|typing|argparse|dataclasses)(\..*)?"),
    (r"py:.*", r"(Tensor|Module|Path|PathLike|Iterable|Iterator|Callable|Mapping|Any|Generator|Optimizer)"),
    (r"py:.*", r"(optional|callable|array|array-like|float64)"),
    (r"py:.*", r"improved_gan(\..*)?\._.*"),  # private helpers (base classes, internal state) are not documented
]
