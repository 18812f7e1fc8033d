"""Bad inputs, one test each: a clear SpectDataError naming the file or patient, or a
documented handling with a warning — never silent garbage, never a raw traceback."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from spectclf import load_slice_folders, load_volumes
from spectclf.exceptions import SpectDataError
from spectclf.io import load_patient_folders


def _cohort(tmp_path, n_slices=4, mode="L"):
    """2 stages x 2 patients of gray slices whose values are known."""
    root = tmp_path / "cohort"
    for s in (1, 2):
        for p in (1, 2):
            pdir = root / f"stage_{s}" / f"P{s}{p}"
            pdir.mkdir(parents=True)
            for k in range(1, n_slices + 1):
                arr = np.full((8, 8), 40 * k, dtype=np.uint8)
                Image.fromarray(arr, "L").convert(mode).save(pdir / f"slice_{k}.png")
    return root


@pytest.mark.parametrize("mode", ["L", "LA", "1", "P", "I;16"])
def test_every_png_mode_loads_in_unit_range(tmp_path, mode):
    root = tmp_path / "c" / "stage_1" / "P1"
    root.mkdir(parents=True)
    arr = np.linspace(0, 255, 64, dtype=np.uint8).reshape(8, 8)
    img = Image.fromarray(arr, "L")
    if mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 257)
        assert img.mode == "I;16"
    else:
        img = img.convert(mode)
    img.save(root / "slice_1.png")
    data = load_slice_folders(tmp_path / "c")
    assert 0.0 <= data.X.min() and data.X.max() <= 1.0
    if mode in ("L", "LA", "I;16", "P"):
        np.testing.assert_allclose(data.X[0, 0, 0], arr / 255.0, atol=1.5 / 255)
    else:  # 1-bit: only black and white
        assert set(np.unique(data.X)) <= {0.0, 1.0}


def test_hidden_and_macos_resource_files_are_ignored_with_a_warning(tmp_path):
    root = _cohort(tmp_path)
    pdir = root / "stage_1" / "P11"
    (pdir / "._slice_1.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    shutil.copy(pdir / "slice_1.png", pdir / ".slice_0.png")
    with pytest.warns(UserWarning, match=r"ignored hidden file.*\._slice_1\.png"):
        data = load_slice_folders(root)
    assert data.X.shape == (4, 1, 4, 8, 8)  # the hidden slice was not added


def test_dangling_slice_link(tmp_path):
    root = _cohort(tmp_path)
    link = root / "stage_2" / "P21" / "slice_5.png"
    link.symlink_to(tmp_path / "gone.png")
    with pytest.raises(SpectDataError, match=r"P21.*slice_5\.png.*missing file"):
        load_slice_folders(root)


@pytest.mark.parametrize("target_shape", [None, (4, 8, 8)])
def test_slice_gap_is_refused_even_with_target_shape(tmp_path, target_shape):
    root = _cohort(tmp_path, n_slices=5)
    (root / "stage_1" / "P12" / "slice_3.png").unlink()
    with pytest.raises(SpectDataError, match=r"P12.*slice number\(s\) \[3\] missing"):
        load_slice_folders(root, target_shape=target_shape)


def test_patient_folder_linked_under_two_stages(tmp_path):
    root = _cohort(tmp_path)
    (root / "stage_2" / "P99").symlink_to(root / "stage_1" / "P11")
    with pytest.raises(SpectDataError, match="same data"):
        load_slice_folders(root)


def test_decompression_bomb(tmp_path, monkeypatch):
    root = _cohort(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # an 8x8 slice is a "bomb"
    with pytest.raises(SpectDataError, match=r"slice_1\.png is too large"):
        load_slice_folders(root)


def test_empty_stage_folder_is_named(tmp_path):
    root = _cohort(tmp_path)
    (root / "stage_3").mkdir()
    with pytest.warns(UserWarning, match="stage_3 is empty"):
        assert len(load_slice_folders(root).y) == 4


def test_predict_folder_with_a_stray_image_beside_patients(tmp_path):
    root = _cohort(tmp_path)
    stage = root / "stage_1"
    shutil.copy(stage / "P11" / "slice_1.png", stage / "stray.png")
    with pytest.raises(SpectDataError, match=r"stray\.png.*P11"):
        load_patient_folders(stage)
    assert load_patient_folders(stage / "P11").groups.tolist() == ["P11"]


# -- manifests ---------------------------------------------------------------------
@pytest.fixture
def volumes(tmp_path):
    for pid in ("A", "B"):
        np.save(tmp_path / f"{pid}.npy", np.ones((3, 4, 4), np.float32))
    return tmp_path


@pytest.mark.parametrize(
    "content, match",
    [
        ("patient_id,stage,path\nA,1\n", r"line 2 has no path"),
        ("patient_id,stage,path\nA,1,\n", r"line 2 has no path"),
        ("patient_id,stage,path\n ,1,A.npy\n", r"line 2 has no patient_id"),
        ("patient_id,stage,path\nA,1,A.npy,extra\n", r"line 2 has extra cells"),
        ("patient_id,stage,path\n", r"no rows"),
    ],
)
def test_malformed_manifest_rows(volumes, content, match):
    (volumes / "m.csv").write_text(content)
    with pytest.raises(SpectDataError, match=match):
        load_volumes(manifest=volumes / "m.csv")


def test_manifest_with_excel_bom_loads(volumes):
    (volumes / "m.csv").write_bytes(
        "\ufeffpatient_id,stage,path\nA,1,A.npy\nB,2,B.npy\n".encode()
    )
    assert load_volumes(manifest=volumes / "m.csv").groups.tolist() == ["A", "B"]


def test_manifest_in_latin1_is_named(volumes):
    (volumes / "m.csv").write_bytes(
        "patient_id,stage,path\nA,1,A.npy\nJos\xe9,2,B.npy\n".encode("latin-1")
    )
    with pytest.raises(SpectDataError, match=r"line 3: byte 0xe9 is not UTF-8"):
        load_volumes(manifest=volumes / "m.csv")


def test_npy_with_zero_slices(tmp_path):
    (tmp_path / "stage_1").mkdir()
    np.save(tmp_path / "stage_1" / "P1.npy", np.ones((0, 4, 4), np.float32))
    with pytest.raises(SpectDataError, match=r"P1\.npy holds an empty array"):
        load_volumes(tmp_path)


# -- DICOM -------------------------------------------------------------------------
def _dicom_slice(path, k, rows=6, cols=6, position=True):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = generate_uid()
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.InstanceNumber = 1  # deliberately useless: position decides the order
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    if position:
        # coronal slices: rows run superior->inferior, columns right->left (LPS +x)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [0, 4.0 * k, 0]  # LPS +y: posterior
        ds.PixelSpacing = [2.0, 3.0]
    ds.PixelData = np.full((rows, cols), k, np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    assert pydicom is not None


def test_dicom_slices_follow_position_not_file_names(tmp_path):
    series = tmp_path / "stage_1" / "P1"
    series.mkdir(parents=True)
    for name, k in zip(["c.dcm", "a.dcm", "d.dcm", "b.dcm"], [2, 0, 3, 1], strict=True):
        _dicom_slice(series / name, k)
    data = load_volumes(tmp_path)
    assert data.X[0, 0, :, 0, 0].tolist() == [0, 1, 2, 3]  # anterior -> posterior
    np.testing.assert_allclose(data.spacing[0], [4.0, 2.0, 3.0])


def test_dicom_series_with_a_stray_file(tmp_path):
    series = tmp_path / "stage_1" / "P1"
    series.mkdir(parents=True)
    for k in range(3):
        _dicom_slice(series / f"s{k}.dcm", k)
    (series / "notes.txt").write_text("scanned on a Tuesday")
    with pytest.raises(SpectDataError, match=r"notes\.txt.*not a readable DICOM"):
        load_volumes(tmp_path)


def test_dicom_series_with_mixed_sizes(tmp_path):
    series = tmp_path / "stage_1" / "P1"
    series.mkdir(parents=True)
    _dicom_slice(series / "s0.dcm", 0)
    _dicom_slice(series / "s1.dcm", 1, rows=8)
    with pytest.raises(
        SpectDataError, match=r"mixes slice sizes \[\(6, 6\), \(8, 6\)\]"
    ):
        load_volumes(tmp_path)
