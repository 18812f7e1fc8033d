"""spectclf: patient-safe staging of DaTscan SPECT volumes with scikit-learn estimators."""

from spectclf.augment import VolumeAugmenter
from spectclf.classifier import Spect3DClassifier
from spectclf.comparison import compare_models
from spectclf.datasets import load_demo, make_spect_phantoms, write_slice_folders
from spectclf.ensemble import HybridSBRClassifier, StageEnsemble
from spectclf.explain import grad_cam, saliency, saliency_share
from spectclf.features import SBRFeatures
from spectclf.io import load_slice_folders, load_volumes
from spectclf.metrics import stage_report
from spectclf.model_io import load_model, save_model
from spectclf.model_selection import (
    PatientStratifiedGroupKFold,
    RepeatedPatientStratifiedGroupKFold,
    check_no_patient_leakage,
    evaluate,
    make_partitions,
)
from spectclf.pipelines import make_default_pipeline, make_sbr_baseline
from spectclf.sampling import (
    AugmentingOverSampler,
    PatientPipeline,
    VolumeRandomOverSampler,
    VolumeRandomUnderSampler,
)
from spectclf.transforms import (
    CenterCrop,
    ColormapToIntensity,
    IntensityNormalizer,
    StriatumCrop,
    ToGrayscale,
    VolumeResizer,
)
from spectclf.tuning import TunedClassifier, nested_cv, tune
from spectclf.workflows import (
    evaluate_and_report,
    explain_patients,
    predict_patients,
    train_and_save,
)

__version__ = "0.2.0"

__all__ = [
    "__version__",
    "AugmentingOverSampler",
    "HybridSBRClassifier",
    "PatientPipeline",
    "PatientStratifiedGroupKFold",
    "RepeatedPatientStratifiedGroupKFold",
    "VolumeAugmenter",
    "compare_models",
    "make_partitions",
    "SBRFeatures",
    "StageEnsemble",
    "StriatumCrop",
    "VolumeRandomOverSampler",
    "VolumeRandomUnderSampler",
    "check_no_patient_leakage",
    "evaluate",
    "grad_cam",
    "saliency",
    "saliency_share",
    "make_default_pipeline",
    "make_sbr_baseline",
    "stage_report",
    "tune",
    "TunedClassifier",
    "nested_cv",
    "CenterCrop",
    "ColormapToIntensity",
    "IntensityNormalizer",
    "Spect3DClassifier",
    "ToGrayscale",
    "VolumeResizer",
    "evaluate_and_report",
    "explain_patients",
    "load_demo",
    "load_model",
    "load_slice_folders",
    "load_volumes",
    "make_spect_phantoms",
    "predict_patients",
    "save_model",
    "train_and_save",
    "write_slice_folders",
]
