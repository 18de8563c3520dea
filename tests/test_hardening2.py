"""Hardening, round two: each input is built here, and each test asserts what the user is told or shown."""

import gzip
import re

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import DeflatedExplicitVRLittleEndian

from spmamba.imaging import MAX_DECODED_BYTES, ImageLoadError, load_image
from tests.malformed import PHOTOMETRIC_SAMPLES, answered_clearly, colour_dicom, families, with_sbit, write_dicom


# 1. Float extremes: finite values whose range overflows float32 arithmetic
@pytest.mark.parametrize("magnitude", [1e30, 3e38])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_extremes_give_a_finite_image_not_nan(tmp_path, magnitude, dtype):
    vol = np.linspace(-magnitude, magnitude, 32 * 32 * 4).reshape(32, 32, 4).astype(dtype)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "x.nii.gz")
    img = load_image(tmp_path / "x.nii.gz")
    assert np.isfinite(img.pixels).all() and img.pixels.min() == 0 and img.pixels.max() == 1


def test_extreme_float_tiff_is_read(tmp_path):
    extreme = np.linspace(-3e38, 3e38, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(extreme, "F").save(tmp_path / "f.tif")
    assert np.isfinite(load_image(tmp_path / "f.tif").pixels).all()


def test_a_nan_score_is_never_called_normal():
    from spmamba.inference import Judgement
    from tests.conftest import SHIPPED

    if not SHIPPED.is_file():
        pytest.skip("needs the shipped checkpoint")
    from spmamba.pipeline import get_predictor

    j = get_predictor(str(SHIPPED)).judge(float("nan"), {})
    assert isinstance(j, Judgement) and j.above is None and j.percentile is None
    assert "could not be scored" in j.text and "normal range" not in j.text
    assert j.to_dict()["above_threshold"] is None


# 2. Colour DICOM converted once
@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_colour_dicom_matches_its_rgb(tmp_path, photometric):
    rng = np.random.default_rng(0)
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[..., 0] = 200  # a red image: a double conversion would turn it green or purple
    rgb[..., 1:] = rng.integers(0, 60, (32, 48, 2))
    img = load_image(colour_dicom(tmp_path / "c.dcm", rgb, photometric))
    expected = (rgb - rgb.min()) / (rgb.max() - rgb.min())
    assert img.pixels.shape == (32, 48, 3)
    assert np.abs(img.pixels - expected).max() < 0.03  # YBR round trip is lossy by a level or two


# 3. Memory and time bombs within the upload limit
def test_nifti_declaring_a_huge_volume_is_refused_before_decoding(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((1024, 1024, 1024))
    hdr.set_data_dtype(np.float32)
    raw = hdr.binaryblock + b"\0" * 4  # header + extension flag; the declared 4 GiB of voxels are absent
    (tmp_path / "bomb.nii.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(ImageLoadError, match=r"declares 4\.0 GiB of image data, more than the 1\.0 GiB allowed"):
        load_image(tmp_path / "bomb.nii.gz")


def test_multiframe_dicom_declaring_too_much_is_refused(tmp_path):
    path = write_dicom(tmp_path / "m.dcm", np.zeros((2, 64, 64)), NumberOfFrames=2)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = MAX_DECODED_BYTES // (64 * 64 * 2) + 1
    ds.save_as(path)
    with pytest.raises(ImageLoadError, match=r"declares 1\.0 GiB of image data, more than the 1\.0 GiB allowed"):
        load_image(path)


def test_deflated_dicom_that_inflates_past_the_limit_is_refused(tmp_path, monkeypatch):
    import spmamba.imaging as imaging

    monkeypatch.setattr(imaging, "MAX_DECODED_BYTES", 4 << 20)  # the same rule at a size a test can build
    path = write_dicom(tmp_path / "d.dcm", np.arange(64 * 64).reshape(64, 64))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.add_new(0x00091010, "OB", b"\0" * 3_000_000)  # small image, large padding: only inflating shows it
    ds.save_as(tmp_path / "deflated.dcm")
    assert (tmp_path / "deflated.dcm").stat().st_size < 100_000  # zeros deflate well
    with pytest.raises(ImageLoadError, match=r"a deflated DICOM that inflates to more than the 1 MiB allowed"):
        load_image(tmp_path / "deflated.dcm")
    assert imaging._inflated_size(tmp_path / "deflated.dcm", 1 << 20) == (1 << 20) + 1  # stops at the check's bound
    assert imaging._inflated_size(tmp_path / "deflated.dcm") > 3_000_000  # counted whole for reports
    monkeypatch.setattr(imaging, "MAX_DECODED_BYTES", 1 << 30)
    assert load_image(tmp_path / "deflated.dcm").pixels.shape == (64, 64)


@pytest.mark.parametrize("affine_kind", ["lps", "permuted", "oblique"])
def test_nifti_slice_read_from_the_file_equals_the_reoriented_volume(tmp_path, affine_kind):
    rng = np.random.default_rng(1)
    vol = rng.random((12, 16, 20, 2)).astype(np.float32)
    affine = {
        "lps": np.diag([-1.0, -1.0, 2.0, 1.0]),
        "permuted": np.array([[0, 0, 1.5, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]]),
        "oblique": np.array([[0.9, 0.3, 0, 0], [-0.3, 0.9, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1.0]]),
    }[affine_kind]
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "v.nii.gz")
    canonical = np.asanyarray(nib.as_closest_canonical(nib.load(tmp_path / "v.nii.gz")).dataobj)[..., 0]
    for axis in (0, 1, 2):
        for index in (0, canonical.shape[axis] // 2, canonical.shape[axis] - 1):
            expected = np.rot90(np.take(canonical, index, axis=axis)).astype(np.float64)
            expected = (expected - expected.min()) / (expected.max() - expected.min())
            got = load_image(tmp_path / "v.nii.gz", axis=axis, slice_index=index).pixels
            np.testing.assert_allclose(got, expected, atol=1e-6)


# 4. Bit depth
@pytest.mark.parametrize("sbit", [False, True])
def test_twelve_bit_data_in_a_16_bit_png_reads_as_its_8_bit_copy(tmp_path, sbit):
    import io

    yy, xx = np.mgrid[:64, :64]
    eight = (127 + 120 * np.sin(xx / 7) * np.cos(yy / 9)).astype(np.uint8)
    twelve = (eight.astype(np.int64) * 4095 // 255).astype(np.uint16)
    if sbit:
        twelve[0, 0] = 100  # the data range alone would still say 12 bits; sBIT says it for certain
    buf = io.BytesIO()
    Image.fromarray(twelve).save(buf, "PNG")
    (tmp_path / "12.png").write_bytes(with_sbit(buf.getvalue(), 12) if sbit else buf.getvalue())
    Image.fromarray(eight).save(tmp_path / "8.png")
    deep, shallow = load_image(tmp_path / "12.png"), load_image(tmp_path / "8.png")
    assert np.abs(deep.pixels - shallow.pixels)[1:].max() < 1.5 / 255
    source = "from the PNG sBIT chunk" if sbit else "from the data range"
    assert deep.meta["scaling"] == f"12-bit values in a 16-bit file ({source})"


# 5. No server paths or planted header text reach the user
def test_error_messages_name_the_upload_not_the_server_folder(tmp_path):
    folder = tmp_path / "gradio" / "0123abcd"
    folder.mkdir(parents=True)
    bad = folder / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    for path in (bad, folder / "vol.nii"):
        if path.suffix == ".nii":
            path.write_bytes(b"\0" * 400)
        with pytest.raises(ImageLoadError) as err:
            load_image(path)
        assert str(folder) not in str(err.value) and path.name in str(err.value)


def test_planted_header_text_does_not_reach_the_metadata(tmp_path):
    path = write_dicom(
        tmp_path / "p.dcm",
        np.arange(64 * 64).reshape(64, 64) % 4000,
        BodyPartExamined="**CHEST** [x](http://e)",
        Manufacturer="<img src=x onerror=alert(1)> ACME",
    )
    meta = load_image(path).meta
    assert "BodyPartExamined" not in meta  # not a DICOM code string: dropped
    assert "Manufacturer" not in meta  # free text never leaves the server, however it is cleaned
    assert not set("<>*[]") & set(str(meta))


def test_header_values_in_pydicom_warnings_never_reach_the_log(tmp_path, capfd, caplog):
    """A record number planted in numeric tags (IS, DS) makes pydicom warn with the value quoted; neither the
    single-image loader nor the series reader lets that warning out."""
    import warnings

    from spmamba.volume import load_volume

    files = []
    for k in range(2):  # valid numbers written, then overwritten in place: pydicom refuses to write the plant
        path = write_dicom(
            tmp_path / f"s{k}.dcm",
            np.arange(64 * 64).reshape(64, 64) % 4000 + k,
            InstanceNumber="12345678",
            SliceThickness="12345678",
            SeriesInstanceUID="1.2.3",
        )
        path.write_bytes(path.read_bytes().replace(b"12345678", b"MRN12345"))
        files.append(path)
    caplog.clear()
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_image(files[0])
        try:
            load_volume(files)
        except ImageLoadError:
            pass  # no positions and unreadable instance numbers: refused, which is beside the point here
    out = capfd.readouterr()
    texts = [str(w.message) for w in seen] + [caplog.text, out.out, out.err]
    assert not any("MRN12345" in t for t in texts), texts


def test_user_errors_are_not_printed_to_the_server_log():
    import gradio as gr

    from spmamba.demo.site import user_errors

    @user_errors
    def fails():
        raise ImageLoadError("Jane_Doe_MRN123.png is damaged")

    with pytest.raises(gr.Error) as err:
        fails()
    assert err.value.print_exception is False


# 6. One loader decides what a file is
def test_extremely_elongated_image_is_refused_with_a_reason(tmp_path):
    Image.fromarray(np.zeros((8, 60000), np.uint8)).save(tmp_path / "strip.png")
    with pytest.raises(ImageLoadError, match="too elongated"):
        load_image(tmp_path / "strip.png")


def test_png_with_an_archive_appended_is_a_png_in_the_batch_tab_too(tmp_path):
    import io
    import zipfile

    from spmamba.demo.batch import expand_uploads

    png = tmp_path / "x.png"
    Image.fromarray(np.full((32, 32), 99, np.uint8)).save(png)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hidden.png", png.read_bytes())
    png.write_bytes(png.read_bytes() + buf.getvalue())
    items = expand_uploads([str(png)], tmp_path / "scratch")
    assert [(i.name, i.error) for i in items] == [("x.png", None)]


# 7. Plain messages
def test_rgb_nifti_gets_a_plain_message(tmp_path):
    rgb = np.zeros((8, 8, 8), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "rgb.nii")
    with pytest.raises(ImageLoadError, match=r"stores colour \(RGB\) voxels.*only greyscale volumes"):
        load_image(tmp_path / "rgb.nii")


def test_cifti_gets_a_plain_message(tmp_path):
    from nibabel import cifti2

    brain = cifti2.BrainModelAxis.from_mask(np.ones((2, 2, 2), bool), affine=np.eye(4))
    img = cifti2.Cifti2Image(np.zeros((1, len(brain)), np.float32), header=(cifti2.ScalarAxis(["a"]), brain))
    img.to_filename(tmp_path / "x.dscalar.nii")
    with pytest.raises(ImageLoadError, match="not an image volume"):
        load_image(tmp_path / "x.dscalar.nii")


def test_dicom_with_window_width_zero_falls_back_to_the_data_range(tmp_path):
    path = write_dicom(tmp_path / "w.dcm", np.arange(64 * 64).reshape(64, 64) % 4000, WindowCenter=100, WindowWidth=0)
    img = load_image(path)
    assert img.pixels.max() == 1 and img.pixels.min() == 0
    assert "window is unusable" in img.meta["notes"][0]


def test_dicom_without_transfer_syntax_is_read_as_uncompressed(tmp_path):
    path = write_dicom(tmp_path / "t.dcm", np.arange(64 * 64).reshape(64, 64) % 4000)
    ds = pydicom.dcmread(path)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(tmp_path / "nots.dcm", enforce_file_format=False)
    img = load_image(tmp_path / "nots.dcm")
    assert img.pixels.shape == (64, 64) and "no transfer syntax" in img.meta["notes"][0]


def test_multipage_tiff_with_a_blank_first_page_offers_its_pages(tmp_path):
    from spmamba.demo import handlers

    pages = [Image.fromarray(np.zeros((40, 40), np.uint8)), Image.fromarray(np.full((40, 40), 9, np.uint8))]
    pages[1].putpixel((3, 3), 200)
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(ImageLoadError, match="page 1 of 2 is blank.*choose another page"):
        handlers.load(str(tmp_path / "p.tif"))
    img = handlers.load(str(tmp_path / "p.tif"), handlers.ImageOptions(index=1))
    assert img.meta["frames"] == 2 and img.meta["frame"] == 1


def test_the_endpoints_choose_a_page_with_index_as_their_message_says(tmp_path):
    """/analyze and /segment take the page the message tells an API user to choose; a bad index is said."""
    from spmamba.demo.analyse import analyse_api
    from spmamba.demo.segment import segment_api
    from spmamba.demo.site import Site
    from spmamba.zoo import list_checkpoints, list_seg_checkpoints

    rng = np.random.default_rng(0)
    pages = [
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)),
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)),
    ]
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    site = Site(list_checkpoints(), [], list_seg_checkpoints())
    for call in (
        lambda **k: analyse_api(site, str(tmp_path / "p.tif"), **k),
        lambda **k: segment_api(site.pipeline, str(tmp_path / "p.tif"), **k),
    ):
        with pytest.raises(ImageLoadError, match="page 1 of 2 is blank.*index in /analyze and /segment, from 0"):
            call()
        rep = call(index=1)[0]
        assert rep["image"]["frame"] == 1 if "image" in rep else rep["frame"] == 1
        with pytest.raises(ImageLoadError, match="index must be a whole number from 0"):
            call(index=-1)


def test_analyze_with_an_unknown_checkpoint_label_says_so():
    import gradio as gr
    from pydicom.data import get_testdata_file

    from spmamba.demo.analyse import analyse_api
    from spmamba.demo.site import Site
    from tests.conftest import SHIPPED

    site = Site({"chest": str(SHIPPED)}, [])
    with pytest.raises(gr.Error, match="Unknown checkpoint 'no-such-model'; choose one of: chest"):
        analyse_api(site, get_testdata_file("CT_small.dcm"), "no-such-model")


# Families: every PhotometricInterpretation pydicom ships a sample of
@pytest.mark.parametrize("photometric", sorted(PHOTOMETRIC_SAMPLES))
def test_every_photometric_interpretation_pydicom_ships_reads_as_its_kind(photometric):
    from pydicom.data import get_testdata_file

    name, channels = PHOTOMETRIC_SAMPLES[photometric]
    img = load_image(get_testdata_file(name))
    assert img.meta["PhotometricInterpretation"] == photometric
    assert (img.pixels.ndim == 3) == (channels == 3) and 0 <= img.pixels.min() and img.pixels.max() <= 1


def test_the_same_colour_picture_reads_alike_whether_stored_rgb_or_jpeg_2000():
    from pydicom.data import get_testdata_file

    rgb = load_image(get_testdata_file("examples_rgb_color.dcm")).pixels
    j2k = load_image(get_testdata_file("examples_jpeg2k.dcm")).pixels
    small = resize_to(j2k, rgb.shape[:2])
    assert np.abs(small.mean((0, 1)) - rgb.mean((0, 1))).max() < 0.01  # one conversion: the same colours


def resize_to(a, shape):
    from skimage.transform import resize

    return resize(a, (*shape, a.shape[2]), anti_aliasing=True)


@pytest.mark.parametrize("fraction", [0.5, 0.95, 1.05, 2.0])
def test_declared_nifti_sizes_around_the_limit(tmp_path, monkeypatch, fraction):
    import spmamba.imaging as imaging

    monkeypatch.setattr(imaging, "MAX_DECODED_BYTES", 4 << 20)  # the rule at a size a test can afford
    depth = int(fraction * (4 << 20) / (64 * 64 * 4))
    vol = np.random.default_rng(0).random((64, 64, depth)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    if fraction <= 1:
        assert load_image(tmp_path / "v.nii.gz").pixels.shape == (64, 64)
    else:
        with pytest.raises(ImageLoadError, match=r"MiB of image data, more than the 4 MiB allowed"):
            load_image(tmp_path / "v.nii.gz")


def test_every_family_case_gets_its_answer(tmp_path, monkeypatch):
    """The families of tests/malformed.py at small limits (the bench runs them at the real ones): each
    valid case loads to a finite image in [0, 1], each refused one names its reason, and
    ``declared_bytes`` puts each size case on the side of the limit its name says."""
    import spmamba.imaging as imaging
    from spmamba.demo import handlers

    monkeypatch.setattr(imaging, "MAX_DECODED_BYTES", 4 << 20)
    monkeypatch.setattr(imaging, "MAX_PIXELS", 1 << 20)
    cases = families(tmp_path, 4 << 20, 1 << 20)
    assert len({c.family for c in cases}) == 7 and len(cases) >= 35
    for case in cases:
        if case.expect is None:
            pixels = handlers.load(str(case.path)).pixels
            assert np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1, case.name
        else:
            with pytest.raises(ImageLoadError, match=case.expect):
                handlers.load(str(case.path))
        if "bytes" in case.family:
            limit = (1 << 20) if "deflated" in case.family else (4 << 20)
            assert (imaging.declared_bytes(case.path) <= limit) == (case.expect is None), case.name


TECHNICAL = re.compile(
    r"\b[A-Z]\w*(Error|Exception|Warning)\b|Errno|Traceback|Whoops|Plugin|\b[a-z]+_[a-z_]+\b|\b[A-Z0-9]+_[A-Z0-9_]+\b"
    r"|[\[\]{}<>]|0x[0-9a-f]"
)


def test_no_refusal_quotes_a_library_or_names_an_exception(tmp_path, monkeypatch):
    """Every refusal of the malformed corpus and the families, on the image loader and the volume loader, in
    plain words: no exception class, no decoder's own text (``Errno``, ``Whoops``, ``MAX_TEXT_CHUNK``), no
    Python identifiers or reprs. The file's own name is taken out first: it is the user's."""
    import spmamba.imaging as imaging
    from spmamba.demo import handlers
    from spmamba.volume import load_volume
    from tests.malformed import build

    monkeypatch.setattr(imaging, "MAX_DECODED_BYTES", 4 << 20)
    monkeypatch.setattr(imaging, "MAX_PIXELS", 1 << 20)
    cases = build(tmp_path / "corpus") + families(tmp_path / "families", 4 << 20, 1 << 20)
    messages = {}
    for case in cases:
        for loader, call in (("image", handlers.load), ("volume", lambda p: load_volume([p]))):
            try:
                call(str(case.path))
            except ImageLoadError as err:
                messages[f"{case.name} ({loader})"] = str(err).replace(case.path.name, "FILE")
    assert len(messages) >= 60
    technical = {k: m for k, m in messages.items() if TECHNICAL.search(m)}
    assert not technical, technical


def test_every_family_case_gets_its_answer_on_all_three_endpoints(tmp_path, monkeypatch):
    """The families through /analyze, /segment and /analyze_volume as plain functions (the bench runs them in
    the server at the real limits): a case /analyze refuses, the other two refuse with the same reason; one it
    analyses, /segment outlines and /analyze_volume scores, or, for a single 2-D image, says it is not a
    volume."""
    import gradio as gr

    import spmamba.imaging as imaging
    from spmamba.demo.analyse import analyse_api
    from spmamba.demo.segment import segment_api
    from spmamba.demo.site import Site, user_errors
    from spmamba.demo.volume import volume_api
    from spmamba.zoo import list_checkpoints, list_seg_checkpoints

    monkeypatch.setattr(imaging, "MAX_DECODED_BYTES", 4 << 20)
    monkeypatch.setattr(imaging, "MAX_PIXELS", 1 << 20)
    site = Site(list_checkpoints(), [], list_seg_checkpoints())
    endpoints = {
        "/analyze": user_errors(lambda p: analyse_api(site, p)),
        "/segment": user_errors(lambda p: segment_api(site.pipeline, p)),
        "/analyze_volume": user_errors(lambda p: volume_api(site.pipeline, [p])),
    }
    wrong = []
    for case in families(tmp_path, 4 << 20, 1 << 20):
        for name, call in endpoints.items():
            try:
                call(str(case.path))
                answer = None
            except gr.Error as err:
                answer = str(err)
            if not answered_clearly(case, name, answer):
                wrong.append(f"{case.name} via {name}: {answer}")
    assert not wrong, wrong
