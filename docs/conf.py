"""Sphinx configuration for the spectclf documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
import spectclf  # noqa: E402

project = "spectclf"
author = "spectclf developers"
copyright = "2026, spectclf developers"
version = release = spectclf.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
templates_path = ["_templates"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# sklearn-generated methods (set_*_request, score) carry references to sklearn's own
# docs, which are not part of this build
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "exclude-members": "set_fit_request,set_score_request,set_predict_request,"
    "set_transform_request,set_predict_proba_request,set_split_request,"
    "set_fit_resample_request,set_output,score,get_metadata_routing",
}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "pydata_sphinx_theme"
html_title = "spectclf"
# nothing may be fetched at build time: no intersphinx
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}
suppress_warnings = ["config.cache"]
