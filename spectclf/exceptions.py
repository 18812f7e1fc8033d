"""Every error and warning spectclf raises on purpose, in one place.

All errors derive from :class:`SpectclfError`; each also derives from the built-in
type a Python user would expect (``ValueError`` for bad input...), so existing
``except ValueError`` code keeps working. The command line turns these — and only
these — into a one-line message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "MissingDependencyError",
    "ModelFileError",
    "PatientLeakageError",
    "PatientLeakageWarning",
    "SpectDataError",
    "SpectclfError",
    "TrainingDivergedError",
    "TuningError",
    "UsageError",
]


class SpectclfError(Exception):
    """Base class of the errors spectclf raises for conditions a user can fix."""


class SpectDataError(SpectclfError, ValueError):
    """Input data (files, folders, arrays) is not what spectclf expects.

    The message names the file, patient or folder at fault and what was expected.
    """


class PatientLeakageError(SpectclfError, ValueError):
    """A split puts slices or volumes of one patient on both sides."""


class UsageError(SpectclfError, ValueError):
    """A bad command-line argument or workflow option, detected after parsing."""


class ModelFileError(SpectclfError, ValueError):
    """A model file is missing, unreadable, not a spectclf model, or untrusted."""


class TrainingDivergedError(SpectclfError, FloatingPointError):
    """Training produced a NaN or infinite loss or probabilities."""


class TuningError(SpectclfError, RuntimeError):
    """A tuning study could not produce a result (e.g. no trial completed)."""


class MissingDependencyError(SpectclfError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class PatientLeakageWarning(UserWarning):
    """An operation could put one patient on both sides of a split."""
