"""Loaders: layout, ordering, colour handling and every bad-input error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from spectclf import load_slice_folders, load_volumes, write_slice_folders
from spectclf.exceptions import SpectDataError
from spectclf.io import natural_key, parse_stage


def _copy(root, tmp_path):
    dst = tmp_path / "cohort"
    shutil.copytree(root, dst)
    return dst


def test_round_trip_colormap(slice_root, small_phantoms):
    data = load_slice_folders(slice_root, color="colormap", colormap="hot")
    d = small_phantoms
    assert data.X.shape == (12, 1, 12, 24, 24)
    assert data.X.dtype == np.float32
    assert data.y.tolist() == d.y.tolist()
    assert data.groups.tolist() == d.groups.tolist()
    expected = d.X / d.X.max(axis=(1, 2, 3, 4), keepdims=True)
    # one step of the 256-entry LUT, plus rounding
    assert np.abs(data.X - expected).max() <= 1.5 / 255


def test_rgb_and_gray_channels(slice_root):
    rgb = load_slice_folders(slice_root, color="rgb")
    gray = load_slice_folders(slice_root, color="gray")
    assert rgb.X.shape[1] == 3 and gray.X.shape[1] == 1
    luma = np.tensordot([0.299, 0.587, 0.114], rgb.X, axes=([0], [1])) / 255
    np.testing.assert_allclose(gray.X[:, 0], luma, atol=1e-5)


def test_gray_reads_colour_and_grayscale_files_on_one_scale(small_phantoms, tmp_path):
    d = small_phantoms
    write_slice_folders(d.X[:4], d.y[:4], d.groups[:4], tmp_path, colormap="gray")
    before = load_slice_folders(tmp_path, color="gray")
    # one patient re-exported as grayscale + alpha PNGs (the others stay RGB)
    patient = tmp_path / f"stage_{d.y[0]}" / str(before.groups[0])
    for f in patient.glob("*.png"):
        Image.open(f).convert("LA").save(f)
    after = load_slice_folders(tmp_path, color="gray")
    assert 0.9 < after.X.max() <= 1.0 and after.X.min() >= 0.0
    # the grayscale patient reads as it did in colour: same scale, same values
    np.testing.assert_allclose(after.X[0], before.X[0], atol=1.5 / 255)
    np.testing.assert_array_equal(after.X[1:], before.X[1:])


def test_slices_stacked_in_natural_order(slice_root, small_phantoms):
    data = load_slice_folders(slice_root, color="colormap")
    names = [p.rsplit("/", 1)[-1] for p in data.slice_paths[0]]
    assert names[:3] == ["slice_1.png", "slice_2.png", "slice_3.png"]
    assert names[9] == "slice_10.png"
    # the 10th slice of the volume is the 10th slice image, not the 2nd
    vol = small_phantoms.X[0, 0]
    assert np.abs(data.X[0, 0, 9] - vol[9] / vol.max()).max() < 0.01


def test_natural_key_and_stage_names():
    names = ["s10.png", "s9.png", "S1.png", "s100.png"]
    assert sorted(names, key=natural_key) == ["S1.png", "s9.png", "s10.png", "s100.png"]
    assert [parse_stage(n) for n in ["stage_3", "Stage4", "2", "HY1", "hy 2"]] == [
        3,
        4,
        2,
        1,
        2,
    ]
    assert parse_stage("mild", {"mild": 1}) == 1
    with pytest.raises(SpectDataError, match="controls"):
        parse_stage("controls")


def test_target_shape_resamples(slice_root):
    data = load_slice_folders(slice_root, color="gray", target_shape=(8, 16, 16))
    assert data.X.shape == (12, 1, 8, 16, 16)


def test_unreadable_image_names_file(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    bad = root / "stage_2" / "P004" / "slice_5.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(SpectDataError, match=r"P004.*slice_5\.png"):
        load_slice_folders(root)


def test_truncated_image_names_file(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    bad = root / "stage_1" / "P002" / "slice_3.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(SpectDataError, match=r"slice_3\.png"):
        load_slice_folders(root)


def test_skip_warns_and_lists(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    (root / "stage_2" / "P004" / "slice_5.png").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="P004"):
        data = load_slice_folders(root, on_error="skip")
    assert "P004" not in data.groups.tolist()
    assert len(data.groups) == 11 and len(data.skipped) == 1


def test_empty_patient_folder(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    (root / "stage_3" / "P099").mkdir()
    with pytest.raises(SpectDataError, match="P099.*no slice images"):
        load_slice_folders(root)


def test_zero_patients(tmp_path):
    (tmp_path / "stage_1").mkdir()
    with pytest.raises(SpectDataError, match="No patients"):
        load_slice_folders(tmp_path)
    with pytest.raises(SpectDataError, match="does not exist"):
        load_slice_folders(tmp_path / "nope")


def test_patient_under_two_stages(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    shutil.copytree(root / "stage_1" / "P001", root / "stage_2" / "P001")
    with pytest.raises(SpectDataError, match="'P001' appears twice"):
        load_slice_folders(root)


def test_unknown_stage_folder(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    (root / "controls" / "C1").mkdir(parents=True)
    with pytest.raises(SpectDataError, match="controls"):
        load_slice_folders(root)
    with pytest.warns(UserWarning, match="controls"):
        assert len(load_slice_folders(root, on_error="skip").y) == 12


def test_mixed_channels(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    pdir = root / "stage_4" / "P010"
    for f in pdir.iterdir():
        Image.open(f).convert("L").save(f)
    with pytest.raises(SpectDataError, match=r"P010.*channel"):
        load_slice_folders(root, color="rgb")
    # the same data loads as luminance
    assert load_slice_folders(root, color="gray").X.shape[1] == 1


def test_mixed_shapes_listed_or_resampled(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    (root / "stage_1" / "P001" / "slice_12.png").unlink()
    with pytest.raises(SpectDataError, match=r"P001 \(11, 24, 24\).*target_shape"):
        load_slice_folders(root)
    data = load_slice_folders(root, target_shape=(12, 24, 24))
    assert data.X.shape == (12, 1, 12, 24, 24)


def test_slices_of_different_size_in_one_patient(slice_root, tmp_path):
    root = _copy(slice_root, tmp_path)
    f = root / "stage_1" / "P003" / "slice_4.png"
    Image.open(f).resize((30, 30)).save(f)
    with pytest.raises(SpectDataError, match=r"P003.*slice_4\.png"):
        load_slice_folders(root)


def test_bad_options():
    with pytest.raises(ValueError, match="color"):
        load_slice_folders(".", color="purple")
    with pytest.raises(ValueError, match="colormap"):
        load_slice_folders(".", color="colormap", colormap="nope")


def test_load_volumes_folder_manifest_and_errors(tmp_path, small_phantoms):
    d = small_phantoms
    nib = pytest.importorskip("nibabel")
    for i in range(4):
        stage_dir = tmp_path / "vols" / f"stage_{d.y[i]}"
        stage_dir.mkdir(parents=True, exist_ok=True)
        if i % 2:
            np.save(stage_dir / f"{d.groups[i]}.npy", d.X[i, 0])
        else:
            nib.save(
                nib.Nifti1Image(d.X[i, 0], _PIL_AFFINE),
                stage_dir / f"{d.groups[i]}.nii.gz",
            )
    data = load_volumes(tmp_path / "vols")
    assert data.X.shape == (4, 1, 12, 24, 24)
    np.testing.assert_allclose(data.X, d.X[:4], rtol=1e-6)
    assert data.groups.tolist() == d.groups[:4].tolist()

    rows = ["patient_id,stage,path"] + [
        f"{d.groups[i]},stage_{d.y[i]},vols/stage_{d.y[i]}/{d.groups[i]}.npy"
        for i in (1, 3)
    ]
    (tmp_path / "manifest.csv").write_text("\n".join(rows))
    data = load_volumes(manifest=tmp_path / "manifest.csv")
    assert data.groups.tolist() == ["P002", "P004"]

    (tmp_path / "bad.csv").write_text("id,stage,path\nP1,1,x.npy\n")
    with pytest.raises(SpectDataError, match="patient_id"):
        load_volumes(manifest=tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("patient_id,stage,path\nP1,1,x.npy\n")
    with pytest.raises(SpectDataError, match=r"x\.npy.*P1"):
        load_volumes(manifest=tmp_path / "missing.csv")
    (tmp_path / "vols" / "stage_1" / "P005.npy").write_bytes(b"garbage")
    with pytest.raises(SpectDataError, match=r"P005\.npy"):
        load_volumes(tmp_path / "vols")


# array axes (D, H, W) increase towards posterior, inferior, left: the library's own
# convention, so a NIfTI with this affine loads unchanged
_PIL_AFFINE = np.array(
    [[0, 0, -2.0, 0], [-3.0, 0, 0, 0], [0, -2.5, 0, 0], [0, 0, 0, 1]]
)


def test_nifti_affines_load_to_one_orientation(tmp_path):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    vol = rng.random((6, 7, 8)).astype(np.float32)  # (D, H, W) = (P, I, L)
    (tmp_path / "a" / "stage_1").mkdir(parents=True)
    (tmp_path / "b" / "stage_1").mkdir(parents=True)
    nib.save(nib.Nifti1Image(vol, _PIL_AFFINE), tmp_path / "a" / "stage_1" / "P1.nii")
    # the same scan stored RAS: x (right->left reversed) first, then y, then z
    ras = vol.transpose(2, 0, 1)[::-1, ::-1, ::-1].copy()
    affine_ras = np.diag([2.0, 3.0, 2.5, 1.0])
    nib.save(nib.Nifti1Image(ras, affine_ras), tmp_path / "b" / "stage_1" / "P1.nii")
    # and LPS-like: x and y flipped relative to RAS
    lps = ras[::-1, ::-1].copy()
    affine_lps = np.diag([-2.0, -3.0, 2.5, 1.0])
    (tmp_path / "c" / "stage_1").mkdir(parents=True)
    nib.save(nib.Nifti1Image(lps, affine_lps), tmp_path / "c" / "stage_1" / "P1.nii")
    loaded = [load_volumes(tmp_path / k) for k in "abc"]
    for data in loaded:
        np.testing.assert_array_equal(data.X[0, 0], vol)
        np.testing.assert_allclose(data.spacing[0], [3.0, 2.5, 2.0])


def test_load_volumes_dicom_series(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    vol = (np.arange(4 * 6 * 6).reshape(4, 6, 6) % 50).astype(np.uint16)
    series = tmp_path / "dcm" / "stage_2" / "P7"
    series.mkdir(parents=True)
    for k in (3, 1, 0, 2):  # written out of order: sorted by InstanceNumber
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = generate_uid()
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset(
            str(series / f"im{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128
        )
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = 6, 6
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope, ds.RescaleIntercept = 2, 0
        ds.PixelData = vol[k].tobytes()
        ds.save_as(series / f"im{k}.dcm", enforce_file_format=True)
    data = load_volumes(tmp_path / "dcm")
    assert data.groups.tolist() == ["P7"] and data.y.tolist() == [2]
    np.testing.assert_array_equal(data.X[0, 0], 2 * vol.astype(np.float32))
    assert pydicom is not None


def test_target_spacing_puts_scanners_on_one_physical_grid(tmp_path):
    nib = pytest.importorskip("nibabel")

    # one smooth object seen by two scanners: 2 mm voxels over a 48 mm field, and
    # 4 mm voxels over a 64 mm field (the same object centred in both)
    def scan(step, n):
        c = (np.arange(n) - (n - 1) / 2) * step
        z, y, x = np.meshgrid(c, c, c, indexing="ij")
        return np.exp(-(z**2 + y**2 + (x - 4) ** 2) / (2 * 8.0**2)).astype(np.float32)

    for name, step, n in (("fine", 2.0, 24), ("coarse", 4.0, 16)):
        (tmp_path / name / "stage_1").mkdir(parents=True)
        affine = _PIL_AFFINE.copy()
        affine[:3, :3] *= step / np.abs(affine[:3, :3]).sum(axis=1, keepdims=True)
        img = nib.Nifti1Image(scan(step, n), affine)
        nib.save(img, tmp_path / name / "stage_1" / "P1.nii")
    fine = load_volumes(
        tmp_path / "fine", target_spacing=4.0, target_shape=(14, 14, 14)
    )
    coarse = load_volumes(tmp_path / "coarse", target_spacing=4, target_shape=(14,) * 3)
    assert fine.X.shape == coarse.X.shape == (1, 1, 14, 14, 14)
    np.testing.assert_allclose(fine.spacing[0], [4.0, 4.0, 4.0])
    # same anatomy at the same place: the fields match voxel for voxel
    assert np.abs(fine.X - coarse.X).max() < 0.06
    peak = np.unravel_index(np.argmax(fine.X[0, 0]), (14, 14, 14))
    assert peak == np.unravel_index(np.argmax(coarse.X[0, 0]), (14, 14, 14))
    # without target_spacing the two grids disagree
    assert (
        load_volumes(tmp_path / "fine").X.shape
        != load_volumes(tmp_path / "coarse").X.shape
    )


def test_target_spacing_needs_recorded_spacing(tmp_path):
    (tmp_path / "stage_1").mkdir()
    np.save(tmp_path / "stage_1" / "P1.npy", np.ones((4, 8, 8), np.float32))
    with pytest.raises(SpectDataError, match=r"P1.npy.*no voxel spacing"):
        load_volumes(tmp_path, target_spacing=2.0)
    with pytest.raises(ValueError, match="target_spacing must be positive"):
        load_volumes(tmp_path, target_spacing=(1.0, 0.0, 1.0))
