"""Sphinx configuration for the django-edgejobs documentation (furo theme, MyST Markdown).

Build: ``scripts/docs`` (``python -m sphinx -W --keep-going -b html docs docs/_build/html``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This checkout first (autodoc must document this tree, not another install), then the test
# project whose settings set Django up for autodoc.
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

import django  # noqa: E402

django.setup()

import django_edgejobs  # noqa: E402

project = "django-edgejobs"
author = "django-edgejobs developers"
copyright = "django-edgejobs developers"
release = django_edgejobs.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
# "#anchor" links inside and across pages resolve to headings.
myst_heading_anchors = 4

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"django-edgejobs {release}"
