"""spectclf: patient-safe staging of DaTscan SPECT volumes with scikit-learn estimators."""

from spectclf.datasets import load_demo, make_spect_phantoms, write_slice_folders
from spectclf.io import load_slice_folders, load_volumes

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "load_demo",
    "load_slice_folders",
    "load_volumes",
    "make_spect_phantoms",
    "write_slice_folders",
]
