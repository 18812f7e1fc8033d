"""Folder layout: stage folders, patient folders, slice files and their order.

Everything that decides *which* files make up a cohort lives here; decoding them is
:mod:`spectclf.io.slices` and :mod:`spectclf.io.readers`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

from spectclf.exceptions import SpectDataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ProblemLog",
    "check_on_error",
    "check_unique_patients",
    "list_slice_files",
    "natural_key",
    "parse_stage",
    "stage_folders",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

_STAGE_RE = re.compile(
    r"^(?:stage|hy|h&y|h_y|hoehn[-_ ]?(?:and[-_ ]?)?yahr|s|class)?[-_ ]*(\d+)$",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``slice_2`` < ``slice_10``).

    Examples
    --------
    >>> sorted(["slice_10.png", "slice_2.png", "slice_1.png"], key=natural_key)
    ['slice_1.png', 'slice_2.png', 'slice_10.png']
    """
    parts = _NUMBER_RE.split(name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def parse_stage(name: str, stage_map: Mapping[str, int] | None = None) -> int:
    """Parse a stage label from a folder name such as ``stage_1``, ``Stage1``, ``HY2``.

    Parameters
    ----------
    name : str
        Folder name.
    stage_map : mapping, default=None
        Explicit ``{folder name: label}`` mapping, consulted first.

    Returns
    -------
    stage : int

    Raises
    ------
    SpectDataError
        If the name is not a recognised stage folder name.

    Examples
    --------
    >>> [parse_stage(n) for n in ["stage_1", "Stage2", "3", "HY4", "H&Y 2"]]
    [1, 2, 3, 4, 2]
    """
    if stage_map is not None and name in stage_map:
        return int(stage_map[name])
    match = _STAGE_RE.match(name.strip())
    if match is None:
        raise SpectDataError(
            f"Cannot read a stage from folder name {name!r}; expected names like "
            "'stage_1', 'Stage1', '1', 'HY2' or 'H&Y 3', or pass "
            "stage_map={'folder name': stage}."
        )
    return int(match.group(1))


def check_on_error(on_error: str) -> None:
    """Validate the loaders' ``on_error`` option."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


class ProblemLog:
    """Per-patient problems of one load: raise at once, or skip and warn once.

    Notes (``note``) are things the loader handled in a documented way (ignored hidden
    files, an empty stage folder); they are always warned, never raised.
    """

    def __init__(self, on_error: str):
        check_on_error(on_error)
        self.on_error = on_error
        self.skipped: list[str] = []
        self.notes: list[str] = []

    def report(self, message: str) -> None:
        """A problem that makes an item unusable."""
        if self.on_error == "raise":
            raise SpectDataError(message)
        self.skipped.append(message)

    def note(self, message: str) -> None:
        """Something handled as documented, worth a word to the user."""
        self.notes.append(message)

    def warn(self) -> None:
        """One warning for all skips and one for all notes."""
        for title, items in (
            ("Skipped {n} item(s) (on_error='skip')", self.skipped),
            ("{n} note(s) on the input", self.notes),
        ):
            if items:
                listing = "\n  ".join(items[:20])
                more = f"\n  ... and {len(items) - 20} more" if len(items) > 20 else ""
                warnings.warn(
                    f"{title.format(n=len(items))}:\n  {listing}{more}",
                    UserWarning,
                    stacklevel=3,
                )


def _visible_entries(folder: Path, problems: ProblemLog) -> list[Path]:
    """Entries of a folder, hidden ones (``.x``, macOS ``._x``) left out with a note."""
    entries, hidden = [], []
    for entry in folder.iterdir():
        (hidden if entry.name.startswith(".") else entries).append(entry)
    hidden_images = [h.name for h in hidden if h.suffix.lower() in IMAGE_EXTENSIONS]
    if hidden_images:
        problems.note(
            f"{folder}: ignored hidden file(s) {sorted(hidden_images)[:5]} (names "
            "starting with '.', e.g. macOS '._' resource files)"
        )
    return sorted(entries, key=lambda p: natural_key(p.name))


def stage_folders(
    root: Path, stage_map, problems: ProblemLog
) -> list[tuple[int, Path]]:
    """The stage folders under ``root`` with their labels, in natural order."""
    if not root.is_dir():
        raise SpectDataError(f"Data folder {root} does not exist or is not a folder.")
    out = []
    for d in _visible_entries(root, problems):
        if not d.is_dir():
            continue
        try:
            stage = parse_stage(d.name, stage_map)
        except SpectDataError as exc:
            problems.report(f"{d}: {exc}")
            continue
        if not any(not e.name.startswith(".") for e in d.iterdir()):
            problems.note(f"stage folder {d} is empty")
            continue
        out.append((stage, d))
    return out


def patient_entries(stage_dir: Path, problems: ProblemLog) -> list[Path]:
    """Visible entries of a stage folder (patient folders or volume files)."""
    return _visible_entries(stage_dir, problems)


def check_unique_patients(records: list[tuple[int, str, Path]]) -> None:
    """Refuse a patient id, or one folder (through a link), under two names."""
    seen: dict[str, Path] = {}
    real: dict[Path, Path] = {}
    for _, pid, path in records:
        if pid in seen:
            raise SpectDataError(
                f"Patient id {pid!r} appears twice: {seen[pid]} and {path}. Each "
                "patient must appear under exactly one stage, or slices of one patient "
                "would leak across train/test splits."
            )
        seen[pid] = path
        target = Path(path).resolve()
        if target in real:
            raise SpectDataError(
                f"{path} and {real[target]} are the same data (a symbolic link?): one "
                "patient would be counted twice, possibly under two stages."
            )
        real[target] = Path(path)


def list_slice_files(pdir: Path, pid: str, problems: ProblemLog) -> list[Path] | None:
    """A patient's slice images in natural order, or None after a reported problem.

    Hidden files are ignored (with a note); a link to a missing file and a gap in the
    slice numbering are problems, since either would silently change the volume.
    """
    files = []
    for f in _visible_entries(pdir, problems):
        if f.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if f.is_symlink() and not f.exists():
            problems.report(f"Patient {pid!r}: slice {f} is a link to a missing file.")
            return None
        if f.is_file():
            files.append(f)
    if not files:
        problems.report(
            f"Patient folder {pdir} holds no slice images ({', '.join(IMAGE_EXTENSIONS)})."
        )
        return None
    numbers = [_NUMBER_RE.findall(f.stem) for f in files]
    if all(numbers) and len({len(n) for n in numbers}) == 1:
        last = [int(n[-1]) for n in numbers]
        expected = set(range(min(last), max(last) + 1))
        missing = sorted(expected - set(last))
        if missing:
            problems.report(
                f"Patient {pid!r} ({pdir}): slice number(s) {missing[:10]} missing "
                f"between {min(last)} and {max(last)}; a gap would silently shorten "
                "the volume."
            )
            return None
    return files
