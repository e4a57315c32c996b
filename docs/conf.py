"""Sphinx configuration of the calf-forecaster documentation.

Build (warnings are errors, as in ``tests/test_docs.py``)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

The build needs no internet: there is no intersphinx, and ``$HF_HUB_OFFLINE`` is set before
autodoc imports the package, so that nothing it imports tries the Hugging Face hub.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the working tree, installed or not
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# -- Project -----------------------------------------------------------------------------------

project = "calf-forecaster"
author = "calf-forecaster developers"
copyright = "2026, calf-forecaster developers"
# read, not imported: a package that fails to import should fail in autodoc, with its traceback
# (a regular expression, not tomllib, which Python 3.10 lacks)
release = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# -- MyST (Markdown pages) ---------------------------------------------------------------------

myst_heading_anchors = 3  # "method.md#3-losses" style links resolve down to ### headings

# -- autodoc / autosummary / numpydoc ----------------------------------------------------------
# Kept generic (no per-object lists, no docstring validation) so that new, renamed or moved
# functions appear in docs/api.rst's automodule sections without touching this file.

autodoc_default_options = {"member-order": "bysource"}
# Methods that override Lightning, sktime or darts without a docstring of their own would
# otherwise show the framework's docstring (not numpydoc, with directives such as `testcode`
# that this build does not load): document only what this package writes.
autodoc_inherit_docstrings = False
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # show `seq_len=96`, not evaluated objects
autosummary_generate = False  # summary tables only; the pages are written by automodule/autoclass
numpydoc_show_class_members = False  # autodoc's :members: lists them; avoids duplicate entries
numpydoc_validation_checks: set[str] = set()  # no docstring validation (style is ruff's job)
numpydoc_xref_param_type = False

# No autodoc_mock_imports: torch, transformers, peft, Lightning, sktime and darts are installed
# with the `dev` extra (or `all` plus `docs`), and mocking them would hide real import errors.

# -- HTML --------------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"calf-forecaster {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False
