"""Sphinx configuration of the loihi_slayer documentation (strict: built with -W)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from loihi_slayer._version import __version__

project = "loihi_slayer"
author = "loihi_slayer developers"
copyright = "2026, loihi_slayer developers"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections carry the types
numpydoc_show_class_members = False
numpydoc_validation_checks: set = set()
suppress_warnings = ["myst.xref_missing"]
html_theme = "alabaster"
html_static_path: list = []
