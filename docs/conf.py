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
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: no CDN needed
    "sphinx.ext.viewcode",  # the [source] links, to highlighted pages of this site
    "numpydoc",
    "myst_parser",
    "sphinx_copybutton",
    "matplotlib.sphinxext.plot_directive",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters and Returns carry the types
numpydoc_show_class_members = False
templates_path = ["_templates"]  # class pages without the inherited members
numpydoc_xref_param_type = False
# Every public docstring complete (checked while building; a failure is a warning,
# an error under -W). Left out: "See Also" and an extended summary on every function,
# which short helpers do not need.
numpydoc_validation_checks = {"all", "SA01", "ES01"}
numpydoc_validation_exclude = {r"\._", r"^wce_xp\.keras\..*\.(get_config|call)$"}

html_theme = "pydata_sphinx_theme"
html_title = f"wce_xp {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    # the benchmarks page's headings are long and its tables wide: no contents column
    "secondary_sidebar_items": {"**": ["page-toc", "sourcelink"], "benchmarks": []},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"**": []}  # every page is in the top bar; the article takes the width
html_static_path = ["_static"]
html_css_files = ["wce_xp.css"]
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = False

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"font.size": 9, "savefig.bbox": "tight"}

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


# Cross-links to the peers' documentation. Their objects.inv files cannot be fetched:
# the CI machines reach package registries only. So the inventories are written here,
# holding just the objects these pages name, at the addresses their documentation
# publishes them under; intersphinx reads them as it reads downloaded ones.
PEERS: dict[str, tuple[str, str, list[tuple[str, str, str]]]] = {
    "numpy": ("NumPy", "https://numpy.org/doc/stable/", [
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$"),
        ("numpy.ma.MaskedArray", "py:class", "reference/maskedarray.baseclass.html#$"),
        ("numpy.show_config", "py:function", "reference/generated/$.html#$"),
        ("numpy.isnan", "py:data", "reference/generated/$.html#$"),
    ]),
    "torch": ("PyTorch", "https://docs.pytorch.org/docs/stable/", [
        ("torch.Tensor", "py:class", "tensors.html#$"),
        ("torch.nn.Module", "py:class", "generated/$.html#$"),
        ("torch.nn.BCEWithLogitsLoss", "py:class", "generated/$.html#$"),
        ("torch.nn.functional.binary_cross_entropy_with_logits", "py:function",
         "generated/$.html#$"),
        ("torch.compile", "py:function", "generated/$.html#$"),
        ("torch.func.vmap", "py:function", "generated/$.html#$"),
    ]),
    "jax": ("JAX", "https://docs.jax.dev/en/latest/", [
        ("jax.Array", "py:class", "_autosummary/$.html#$"),
        ("jax.jit", "py:function", "_autosummary/$.html#$"),
        ("jax.grad", "py:function", "_autosummary/$.html#$"),
        ("jax.vmap", "py:function", "_autosummary/$.html#$"),
    ]),
    "tensorflow": ("TensorFlow", "https://www.tensorflow.org/api_docs/python/", [
        ("tf.Tensor", "py:class", "tf/Tensor"),
        ("tf.Variable", "py:class", "tf/Variable"),
        ("tf.GradientTape", "py:class", "tf/GradientTape"),
        ("tf.nn.weighted_cross_entropy_with_logits", "py:function",
         "tf/nn/weighted_cross_entropy_with_logits"),
        ("tf.nn.sigmoid_cross_entropy_with_logits", "py:function",
         "tf/nn/sigmoid_cross_entropy_with_logits"),
    ]),
    "keras": ("Keras", "https://keras.io/api/", [
        ("keras.losses.Loss", "py:class", "losses/#loss-class"),
        ("keras.losses.BinaryCrossentropy", "py:class",
         "losses/probabilistic_losses/#binarycrossentropy-class"),
        ("keras.losses.BinaryFocalCrossentropy", "py:class",
         "losses/probabilistic_losses/#binaryfocalcrossentropy-class"),
    ]),
    "dask": ("Dask", "https://docs.dask.org/en/stable/", [
        ("dask.array.Array", "py:class", "generated/$.html#$"),
    ]),
    "cupy": ("CuPy", "https://docs.cupy.dev/en/stable/", [
        ("cupy.ndarray", "py:class", "reference/generated/$.html#$"),
    ]),
    "optax": ("Optax", "https://optax.readthedocs.io/en/latest/", [
        ("optax", "py:module", "api/losses.html"),
        ("optax.losses.sigmoid_binary_cross_entropy", "py:function", "api/losses.html#$"),
        ("optax.losses.sigmoid_focal_loss", "py:function", "api/losses.html#$"),
    ]),
    "sklearn": ("scikit-learn", "https://scikit-learn.org/stable/", [
        ("sklearn.metrics.make_scorer", "py:function", "modules/generated/$.html#$"),
        ("sklearn.metrics.log_loss", "py:function", "modules/generated/$.html#$"),
    ]),
}


def _write_inventories() -> dict[str, tuple[str, str]]:
    import zlib

    out = Path(__file__).parent / "_generated" / "inventories"
    out.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for key, (name, url, objects) in PEERS.items():
        lines = "".join(f"{obj} {role} 1 {uri} -\n" for obj, role, uri in objects)
        header = (f"# Sphinx inventory version 2\n# Project: {name}\n# Version: stable\n"
                  "# The remainder of this file is compressed using zlib.\n")
        path = out / f"{key}.inv"
        path.write_bytes(header.encode() + zlib.compress(lines.encode()))
        mapping[key] = (url, str(path))
    return mapping


intersphinx_mapping = _write_inventories()
