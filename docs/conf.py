"""Sphinx configuration: the API reference from the numpydoc docstrings, the README's
tables and charts, the command line's reference (generated from its parser), BENCHMARKS.md
and a migration page. ``nox -s docs`` builds it with warnings as errors and executes every
example (``sphinx-build -b doctest``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import wce_xp

project = "wce_xp"
author = "the wce_xp developers"
copyright = "2026, the wce_xp developers"
release = version = wce_xp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated"]
myst_heading_anchors = 3
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autodoc_member_order = "bysource"
html_theme = "alabaster"
html_title = f"wce_xp {release}"
suppress_warnings = ["myst.xref_missing"]  # README's links to repository files

# every example runs with NumPy as np; the other libraries are imported where used
doctest_global_setup = "import numpy as np\nimport wce_xp"
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _write_cli_reference() -> None:
    """The help of ``wce-xp`` and of each command, as the parser prints it."""
    from wce_xp.cli._commands import build_parser

    os.environ["COLUMNS"] = "88"  # argparse's wrap width: stable output
    parser = build_parser()
    parts = [("wce-xp", parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parts += [(f"wce-xp {name}", sub.format_help())
                      for name, sub in action.choices.items()]
    out = Path(__file__).parent / "_generated"
    out.mkdir(exist_ok=True)
    for name, text in parts:
        (out / (name.replace(" ", "_") + ".txt")).write_text(text)


_write_cli_reference()
