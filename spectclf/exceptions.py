"""Errors and warnings raised by spectclf."""

from __future__ import annotations


class SpectDataError(ValueError):
    """Input data (files, folders, arrays) is not what spectclf expects.

    The message names the file, patient or folder at fault and what was expected.
    """


class PatientLeakageError(ValueError):
    """A split puts slices or volumes of one patient on both sides."""


class PatientLeakageWarning(UserWarning):
    """An operation could put one patient on both sides of a split."""


class MissingDependencyError(ImportError):
    """An optional dependency is needed; the message names the extra to install."""
