"""Demo handlers as plain functions, the shared Predictor, and the /analyze API through gradio_client."""

import copy
import csv
import dataclasses
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from spmamba import inference
from spmamba.cli import main
from spmamba.data import data_root
from spmamba.demo import batch, handlers
from spmamba.demo.examples import build_examples
from spmamba.demo.render import WALK_FRAMES, maps_figure, scan_figure, walk_step
from spmamba.imaging import ImageLoadError
from spmamba.inference import image_modalities
from spmamba.pipeline import Pipeline, get_predictor
from spmamba.zoo import list_checkpoints, preselect
from tests import malformed
from tests.conftest import SHIPPED, needs_checkpoint

DATA = data_root()


def first_image(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


pytestmark = needs_checkpoint
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "chest.png"
    yy, xx = np.mgrid[:300, :260]
    Image.fromarray((127 + 100 * np.sin(xx / 17) * np.cos(yy / 23)).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def analysis(png):
    return handlers.analyse(png, str(SHIPPED))


def test_checkpoint_list_has_summaries():
    cks = list_checkpoints()
    label = next(k for k, v in cks.items() if v == str(SHIPPED))
    assert "val AUROC" in label and not any("train-state" in v for v in cks.values())


def test_analyze_caches_maps_and_display(analysis):
    s = get_predictor(str(SHIPPED)).image_size
    assert analysis.maps.per_scale.shape == (1, 3, s, s) and analysis.maps.prototype.shape == (1, s, s)
    assert analysis.display.shape == (512, round(260 * 512 / 300))  # longest side 512, aspect kept
    assert analysis.calibration["threshold"] > 0


def test_sliders_rescore_without_the_network(analysis, monkeypatch):
    monkeypatch.setattr(inference, "predict_maps", lambda *a: pytest.fail("the network ran on a slider event"))
    base = handlers.render(analysis, analysis.weights)
    more = handlers.render(analysis, dataclasses.replace(analysis.weights, beta=analysis.weights.beta - 0.05))
    assert more.scores["total"] < base.scores["total"]  # concentration > 0, its weight lowered
    assert more.scores["concentration"] == base.scores["concentration"]
    faint = handlers.render(analysis, analysis.weights, opacity=0.0, contour=1.01)
    shown = (analysis.display * 255).astype(np.uint8)
    assert np.abs(faint.overlay[..., 0].astype(int) - shown).max() <= 1  # opacity 0: the image itself
    assert not np.array_equal(faint.overlay, base.overlay)
    assert faint.scores == base.scores


def test_a_reweighted_score_is_shown_but_not_placed_against_the_normal_range(analysis):
    """The threshold and the normal scores were measured with the checkpoint's weights: with other weights the
    score is shown, no verdict or threshold is drawn, and the checkpoint's own weights bring the verdict back."""
    own = handlers.render(analysis, analysis.weights)
    moved = handlers.render(analysis, dataclasses.replace(analysis.weights, gamma=analysis.weights.gamma + 10))
    assert "Re-weighted with your slider values" in moved.verdict and "threshold" not in moved.verdict
    assert f"Score {moved.scores['total']:.3g}" in moved.verdict
    assert not any(shape.get("type") == "line" for shape in moved.figure.to_dict()["layout"].get("shapes", []))
    back = handlers.render(analysis, handlers.weights_from_sliders(analysis.weights, *_slider_values(analysis)))
    assert back.verdict == own.verdict and "Re-weighted" not in own.verdict


def _slider_values(analysis):
    return [getattr(analysis.weights, f) for f in handlers.SLIDER_FIELDS]


def test_verdict_places_the_score_and_never_diagnoses(analysis):
    predictor = get_predictor(str(SHIPPED))
    cal = analysis.calibration
    hi = predictor.judge(cal["threshold"] + 1).text
    lo = predictor.judge(min(cal["normal_scores"]) - 1).text
    n = len(cal["normal_scores"])
    assert "Above the normal range" in hi and "Within the normal range" in lo and f"lower than all {n}" in lo
    lo_ci, hi_ci = cal["val_false_positive_rate_ci95"]
    rate = (
        f"{100 * cal['val_false_positive_rate']:.1f}% ({100 * lo_ci:.0f}–{100 * hi_ci:.0f}%) of the normal validation"
    )
    for text in (hi, lo):  # the threshold's false-alarm rate on validation, with its interval
        assert "not whether disease is present" in text and rate in text
        assert "weak" not in text  # over 100 calibration normals
    # the shipped checkpoint was trained with a shift split: the verdict states that split's false-alarm rate
    s_lo, s_hi = cal["shift_false_positive_rate_ci95"]
    shift = f"as do {100 * cal['shift_false_positive_rate']:.1f}% ({100 * s_lo:.0f}–{100 * s_hi:.0f}%) of normal"
    assert shift in lo and "another acquisition group" in lo
    # under the threshold, the verdict says what share of the shift split's abnormal images the threshold passes
    t_lo, t_hi = cal["shift_true_positive_rate_ci95"]
    passed = 1 - cal["shift_true_positive_rate"]
    missed = f"passes {100 * passed:.0f}% ({100 * (1 - t_hi):.0f}–{100 * (1 - t_lo):.0f}%)"
    assert missed in lo and "does not rule a finding out" in lo and "rule a finding out" not in hi
    unshifted = copy.copy(predictor)  # one trained without a shift split does not mention one
    unshifted.calibration = {k: v for k, v in cal.items() if not k.startswith("shift_")}
    assert "another acquisition group" not in unshifted.judge(0.0).text
    assert "rule a finding out" not in unshifted.judge(0.0).text  # nor a miss rate it never measured
    unshifted.calibration |= {"val_true_positive_rate": 0.65, "val_true_positive_rate_ci95": [0.45, 0.85]}
    assert "passes 35% (15–55%) of the abnormal images of the validation split" in unshifted.judge(0.0).text
    uncalibrated = copy.copy(predictor)
    uncalibrated.calibration = None
    assert "cannot be placed" in uncalibrated.judge(1.0).text


def test_no_normal_range_verdict_for_a_modality_the_model_was_not_trained_on():
    predictor = get_predictor(str(SHIPPED))
    assert predictor.modalities == ("CR", "DX")
    j = predictor.judge(predictor.calibration["threshold"] + 5, {"Modality": "CT", "format": "DICOM"})
    assert j.above is None and j.percentile is None and j.modality_match is False
    assert "cannot judge this kind of image" in j.text and "normal range" not in j.headline
    assert "above" not in j.text.lower() and "within" not in j.text.lower()
    assert predictor.judge(1.0, {"Modality": "DX"}).modality_match is True
    assert predictor.judge(1.0, {"format": "PNG"}).modality_match is None  # unknown: placed, as before


def test_bad_upload_raises_the_loader_error(tmp_path):
    (tmp_path / "x.dcm").write_text("not dicom")
    with pytest.raises(ImageLoadError, match="DICOM"):
        handlers.analyse(str(tmp_path / "x.dcm"), str(SHIPPED))


@pytest.mark.parametrize("order", ["circular_hilbert", "raster"])
def test_scan_figure_walks_the_path(order):
    fig = scan_figure(order, 8, 16, 3, 10)
    xs = [x for tr in fig.data[:2] for x in tr.x if x is not None]
    assert len(xs) == 10 and "step 10/64" in fig.layout.title.text
    if order == "raster":
        full = scan_figure(order, 8, 16, 3, None)
        assert list(full.data[1].x) == list(range(7, -1, -1)) * 8  # direction 3 reads rows right to left


def test_scan_tab_handlers_keep_title_path_and_directions_in_step(analysis):
    """Each walk step is drawn with the step it sets (the title never lags); the direction slider offers only the
    chosen number of directions; the analysed image is drawn in an explicit grey scale plotly.js understands."""
    from spmamba.demo import scan_order
    from spmamba.demo.render import GREY

    nxt, fig, _ = scan_order.tick("circular_hilbert", 16, 8, 0, 40, False, None)
    assert f"step {nxt}/256" in fig.layout.title.text and nxt > 40
    update, fig = scan_order.directions("raster", 8, 4, 7, 10, False, None)
    assert update["maximum"] == 3 and update["value"] == 3 and "step 10/64" in fig.layout.title.text
    update, fig = scan_order.resized("raster", 32, 4, 0, 10, False, None)
    assert update["maximum"] == update["value"] == 1024 and "step 1024/1024" in fig.layout.title.text
    over = scan_order.draw("hilbert", 16, 8, 0, None, True, analysis)
    assert over.data[0].type == "heatmap" and [list(stop) for stop in over.data[0].colorscale] == GREY


def test_walk_reaches_the_end_in_a_fixed_number_of_frames():
    for n in (8, 16, 64):
        steps, frames, done = 1, 0, False
        while not done:
            new, done = walk_step(steps, n)
            assert new > steps or done
            steps, frames = new, frames + 1
        assert steps == n * n and frames <= WALK_FRAMES


def test_api_analyze_end_to_end(png, app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    result, overlay = client.predict(handle_file(png), api_name="/analyze")  # no checkpoint argument needed
    assert np.isfinite(result["scores"]["total"]) and overlay
    # a synthetic texture is no radiograph: routed to its nearest checkpoint, said to be unlike its training images
    assert result["in_domain"] is False and result["above_threshold"] is None and result["modality_match"] is None
    assert result["looks_like"].startswith("Unlike any training set") and result["nearest_checkpoint"]
    if DATA is not None:  # a real chest X-ray is placed against the normal range
        xray = first_image(DATA / "zhanglab" / "val" / "PNEUMONIA")
        real, _ = client.predict(handle_file(str(xray)), api_name="/analyze")
        assert real["checkpoint"] == SHIPPED.stem and real["in_domain"] is True
        assert isinstance(real["above_threshold"], bool) and 0 <= real["percentile_among_normal"] <= 100
    chest = next(k for k, v in list_checkpoints().items() if v == str(SHIPPED))  # named: no switch to a CT model
    ct, _ = client.predict(handle_file(get_testdata_file("CT_small.dcm")), chest, api_name="/analyze")
    assert ct["image"]["Modality"] == "CT" and ct["modality_match"] is False
    assert ct["above_threshold"] is None and ct["percentile_among_normal"] is None
    assert "cannot judge" in ct["verdict"] and "cannot judge this kind of image" in ct["note"]
    with pytest.raises(Exception, match="Unknown checkpoint"):
        client.predict(handle_file(png), "no-such-model", api_name="/analyze")
    bad = png + ".txt"
    open(bad, "w").write("hello")
    with pytest.raises(Exception, match="not an image file"):
        client.predict(handle_file(bad), api_name="/analyze")
    result, _ = client.predict(handle_file(png), api_name="/analyze")  # still serving
    assert result["scores"]["total"] > 0
    from spmamba.zoo import list_seg_checkpoints

    documented = {"/analyze", "/analyze_volume"} | ({"/segment"} if list_seg_checkpoints() else set())
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == documented


def test_readme_client_example_runs_as_written(app_url, tmp_path, capsys):
    """The README's gradio_client snippet, executed with only its address and file name pointed at this test."""
    readme = (ROOT / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if 'api_name="/analyze"' in b)
    texture = np.tile((np.arange(64) * 40).astype(np.uint16), (64, 1))
    dicom = malformed.write_dicom(tmp_path / "chest.dcm", texture)
    import nibabel as nib
    from pydicom.data import get_testdata_file

    from tests.test_volume import _head

    nib.save(nib.Nifti1Image(_head(), np.eye(4)), tmp_path / "brain.nii.gz")
    files = {
        '"http://127.0.0.1:7860/"': app_url,
        '"chest.dcm"': str(dicom),
        '"brain.nii.gz"': str(tmp_path / "brain.nii.gz"),
        '"lesion.dcm"': get_testdata_file("MR_small.dcm"),
    }
    for written, here in files.items():
        assert written in code
        code = code.replace(written, repr(here))
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    analysed, volume = capsys.readouterr().out.strip().splitlines()[-2:]  # the client first says where it connected
    assert analysed.split()[0] == SHIPPED.stem and float(analysed.split()[1]) > 0  # checkpoint, score, ...
    assert int(volume.split()[0]) == scope["volume"]["highest_slice"] and float(volume.split()[1]) > 0
    names = sorted(Path(f if isinstance(f, str) else f["path"]).name for f in scope["masks"])
    assert names == ["lesion-mask-seg.dcm", "lesion-mask.png"] and scope["lesion"]["lesion_pixels"] >= 0


def test_predict_cli_says_what_the_page_says(png, capsys):
    from spmamba.demo.site import Site

    assert main(["predict", png, "--json", "--checkpoint", str(SHIPPED)]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    ready = Site({"chest": str(SHIPPED)}, []).prepare(png, handlers.ImageOptions(), "chest", keep=True)
    analysis = handlers.analyse_image(ready.image, str(SHIPPED), in_domain=ready.route.in_domain)
    page = handlers.render(analysis, analysis.weights)
    for key in ("total", "reconstruction", "prototype", "concentration", "contrast"):
        assert report["scores"][key] == pytest.approx(page.scores[key], rel=1e-5)
    assert report["verdict"] == page.judgement.headline and report["note"] == page.judgement.text
    assert report["percentile_among_normal"] == pytest.approx(page.judgement.percentile)
    assert main(["predict", png, "--checkpoint", str(SHIPPED)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert page.judgement.headline in line and f"{page.scores['total']:.4g}" in line


def test_warm_up_loads_and_runs_the_default_checkpoint():
    from spmamba import pipeline
    from spmamba.demo.app import warm_up

    pipeline._predictor.cache_clear()
    warm_up({"x": str(SHIPPED)}).join()
    assert pipeline._predictor.cache_info().currsize == 1
    warm_up({"bad": "/no/such/file.safetensors"}).join()  # a failure is logged, never raised


def test_window_presets_and_custom_window():
    assert handlers.window_for("auto", 0, 0) is None
    assert handlers.window_for("lung", 0, 0) == (-600.0, 1500.0)
    assert handlers.window_for("custom", 50, 0) == (50.0, 1.0)  # width clamped to a usable window
    with pytest.raises(ImageLoadError, match="unknown window preset"):
        handlers.window_for("liver", 0, 0)


def test_dicom_window_changes_the_analysed_image():
    ct = get_testdata_file("CT_small.dcm")
    auto = handlers.analyse(ct, str(SHIPPED))
    lung = handlers.analyse(ct, str(SHIPPED), handlers.ImageOptions(window=(-600, 1500)))
    bone = handlers.analyse(ct, str(SHIPPED), handlers.ImageOptions(window=(400, 1800)))
    assert auto.image_meta["Modality"] == "CT"
    assert not np.allclose(lung.display, bone.display)
    assert not torch.equal(lung.maps.per_scale, bone.maps.per_scale)  # the network saw a different image


def test_nifti_axis_and_slice_options():
    import nibabel.testing

    vol = str(Path(nibabel.testing.data_path) / "example4d.nii.gz")
    a = handlers.analyse(vol, str(SHIPPED), handlers.ImageOptions(index=3, axis=2))
    b = handlers.analyse(vol, str(SHIPPED), handlers.ImageOptions(index=None, axis=0))
    assert (a.image_meta["slice"], a.image_meta["axis"]) == (3, 2)
    assert b.image_meta["axis"] == 0 and b.image_meta["slice"] == b.image_meta["slices"] // 2
    with pytest.raises(ImageLoadError, match="slice 99 does not exist"):
        handlers.analyse(vol, str(SHIPPED), handlers.ImageOptions(index=99, axis=2))


def test_modality_preselection_keeps_a_fitting_checkpoint_and_warns_otherwise():
    cks = {"xray": str(SHIPPED)}
    assert preselect("DX", cks, "xray") == ("xray", "")
    assert preselect(None, cks, "xray") == ("xray", "")
    label, note = preselect("CT", cks, "xray")
    assert label == "xray" and "No checkpoint here was trained on CT" in note and "CR/DX" in note
    nifti = image_modalities({"format": "NIfTI"})
    assert "trained on MR/CT/PT images" in preselect(nifti, cks, "xray")[1]
    assert image_modalities({"format": "PNG"}) == () and image_modalities({"Modality": "dx"}) == ("DX",)


def test_notes_reach_the_verdict(png):
    a = handlers.analyse(png, str(SHIPPED), notes=["trained on other images"])
    assert "⚠️ trained on other images" in handlers.render(a, a.weights).verdict


def test_colour_bar_and_component_maps(analysis):
    r = handlers.render(analysis, analysis.weights, contour=0.9)
    assert f"{r.scores['map_max']:.3g} (most unusual)" in r.colour_bar and "outline ≥" in r.colour_bar
    hidden = handlers.render(analysis, analysis.weights, contour=1.01).colour_bar  # no outline: its mark hidden
    assert 'class="outline-label" style="display:none;' in hidden and "outline ≥" not in hidden
    for key in ("reconstruction", "prototype", "concentration", "contrast"):
        assert f"{r.scores[key]:.4g}" in r.table
    assert f"**{r.scores['total']:.4g}**" in r.table and f"β = {analysis.weights.beta:g}" in r.table
    fig = maps_figure(analysis.maps.per_scale[0].numpy(), analysis.maps.prototype[0].numpy())
    assert [a.text for a in fig.layout.annotations][-1] == "prototype distance" and len(fig.data) == 4
    np.testing.assert_array_equal(fig.data[3].z, analysis.maps.prototype[0].numpy()[::-1])
    assert fig.layout.title.text.startswith("raw maps")  # the shipped checkpoint scores raw maps
    assert maps_figure(np.zeros((3, 4, 4)), np.zeros((4, 4)), True).layout.title.text.startswith("standardised")


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def test_batch_scores_files_and_zips_in_order(png, tmp_path):
    png_bytes = open(png, "rb").read()
    z = _zip(
        tmp_path / "study.zip",
        {
            "a/b/deep.png": png_bytes,
            "../../evil.png": png_bytes,
            "notes.txt": b"hello",
            "__MACOSX/._deep.png": b"x",
            "a/": b"",
        },
    )
    ct = get_testdata_file("CT_small.dcm")
    rows, csv_path = batch.score_files([png, z, ct], Pipeline({"chest": str(SHIPPED)}, {}), str(SHIPPED))
    names = [r[0] for r in rows]
    assert names == [
        "chest.png",
        "study.zip: a/b/deep.png",
        "study.zip: ../../evil.png",
        "study.zip: notes.txt",
        "CT_small.dcm",
    ]
    by = dict(zip(names, rows, strict=True))
    assert by["chest.png"][3] == pytest.approx(by["study.zip: a/b/deep.png"][3], rel=1e-6)  # same image
    assert by["chest.png"][3] == pytest.approx(
        handlers.render(handlers.analyse(png, str(SHIPPED)), handlers.analyse(png, str(SHIPPED)).weights).scores[
            "total"
        ],
        rel=1e-4,
    )
    assert "unsafe path" in by["study.zip: ../../evil.png"][7]
    assert (
        by["study.zip: notes.txt"][4] == "error"
        and "study.zip: notes.txt is not an image" in by["study.zip: notes.txt"][7]
    )
    # the synthetic texture is no chest X-ray: scored, and said to be unlike the training images
    assert by["chest.png"][4] == "unlike the training images" and by["chest.png"][2] is False
    assert by["CT_small.dcm"][6] == "CT" and by["CT_small.dcm"][4].startswith("cannot judge")
    assert by["CT_small.dcm"][5] is None  # no percentile among normals of another modality
    assert not (tmp_path.parent / "evil.png").exists()
    with open(csv_path) as fh:
        table = list(csv.reader(fh))
    assert table[0] == batch.BATCH_COLUMNS and [r[0] for r in table[1:]] == names


def test_batch_batches_match_single_images(png, tmp_path, monkeypatch):
    """Images scored 2 at a time give the scores they get one by one."""
    files = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        a = np.asarray(Image.open(png)).astype(int)
        Image.fromarray(np.clip(a + 30 * i, 0, 255).astype(np.uint8)).save(p)
        files.append(str(p))
    monkeypatch.setattr(batch, "BATCH_SIZE", 2)
    rows, _ = batch.score_files(files, Pipeline({"chest": str(SHIPPED)}, {}), str(SHIPPED))
    for f, row in zip(files, rows, strict=True):
        a = handlers.analyse(f, str(SHIPPED))
        assert row[3] == pytest.approx(handlers.render(a, a.weights).scores["total"], rel=1e-4, abs=1e-4)


def test_batch_refuses_an_empty_request():
    with pytest.raises(ImageLoadError, match="no files"):
        batch.score_files([], Pipeline({"chest": str(SHIPPED)}, {}), str(SHIPPED))


def test_examples_gallery_builds_from_packages_and_folders(tmp_path, png):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.open(png).save(folder / "extra.png")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    ex = build_examples([folder], cache=tmp_path / "cache", with_dataset=False)
    captions = [e.caption for e in ex]
    assert "CT slice (pydicom sample, DICOM)" in captions and "extra.png" in captions
    assert "broken.png" not in captions  # unreadable files are left out, not fatal
    assert all(e.thumb.is_file() and max(Image.open(e.thumb).size) <= 160 for e in ex)
    assert all(str(e.path).startswith(str(tmp_path)) for e in ex)  # package samples copied to the cache


def test_command_line_limits_reach_launch(monkeypatch):
    from spmamba.demo.app import launch_options, parse_args

    monkeypatch.setenv("SPMAMBA_MAX_UPLOAD_MB", "2.5")
    args = parse_args(["--port", "9999", "--max-pixels", "1000000"])
    opts = launch_options(args, [])
    assert opts["max_file_size"] == int(2.5 * 1024**2) and opts["server_port"] == 9999
    assert args.max_pixels == 1_000_000 and opts["allowed_paths"] == []


def relabelled(path: Path, **training) -> str:
    """A copy of the shipped checkpoint whose card says it was trained with ``training`` (modalities, window)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(SHIPPED), "pt") as f:
        meta, tensors = json.loads(f.metadata()["spmamba"]), {k: f.get_tensor(k) for k in f.keys()}
    meta["training"].update(training)
    save_file(tensors, str(path), metadata={"spmamba": json.dumps(meta)})
    return str(path)


def test_modality_switches_to_a_checkpoint_trained_on_it(tmp_path):
    cks = {"xray": str(SHIPPED)}
    for modality in ("CT", "MR"):  # the CT checkpoint sorts first, as head-ct does before lgg-flair
        cks[modality.lower()] = relabelled(tmp_path / f"{modality}.safetensors", modalities=[modality])
    assert preselect("CT", cks, "xray") == ("ct", "Switched to a checkpoint trained on CT images.")
    assert preselect("dx", cks, "ct") == ("xray", "Switched to a checkpoint trained on DX (X-ray) images.")
    assert preselect("CT", cks, "ct") == ("ct", "")
    nifti = image_modalities({"format": "NIfTI"})
    assert preselect(nifti, cks, "xray") == ("mr", "Switched to a checkpoint trained on MR images.")
    assert preselect(nifti, cks, "ct") == ("ct", "")  # a NIfTI may be CT: a CT checkpoint the user chose stays


def test_dataset_example_picks_its_checkpoint_and_shows_its_mask_on_request(tmp_path):
    """A brain MRI example is a PNG: the page knows it by its bytes (Gradio serves a copy), switches to the
    MR checkpoint as a DICOM with Modality MR would, and outlines its mask only when asked."""
    from spmamba.demo.examples import Example
    from spmamba.demo.site import Site
    from spmamba.visualize import TRUTH_OUTLINE
    from tests.conftest import write_synthetic

    mask = write_synthetic(tmp_path / "slice.png", np.random.default_rng(0), True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "slice-mask.png")
    mr = relabelled(tmp_path / "mr.safetensors", modalities=["MR"])
    site = Site(
        {"xray": str(SHIPPED), "mr": mr},
        [Example(tmp_path / "slice.png", tmp_path / "t.png", "MR", tmp_path / "slice-mask.png", "MR")],
    )
    upload = tmp_path / "gradio-copy" / "slice.png"
    upload.parent.mkdir()
    upload.write_bytes((tmp_path / "slice.png").read_bytes())
    ready = site.prepare(str(upload), handlers.ImageOptions(), "xray")
    assert ready.label == "mr" and ready.route.notes == ["Switched to a checkpoint trained on MR images."]
    assert ready.truth == tmp_path / "slice-mask.png"
    a = handlers.analyse_image(ready.image, mr, truth=ready.truth)
    assert a.truth.shape == a.display.shape and a.truth.sum() > 0
    cyan = np.array(TRUTH_OUTLINE) * 255

    def cyan_pixels(show):
        return (np.abs(handlers.render(a, a.weights, show_truth=show).overlay - cyan).max(-1) < 2).sum()

    assert cyan_pixels(True) > 20 and cyan_pixels(False) == 0
    other = tmp_path / "other.png"
    write_synthetic(other, np.random.default_rng(1), True)
    assert site.prepare(str(other), handlers.ImageOptions(), "xray").truth is None  # any other file: no mask


def test_ct_checkpoint_reads_dicom_ct_in_its_training_window(tmp_path, capsys):
    from spmamba.demo.site import Site

    ct = get_testdata_file("CT_small.dcm")
    head = relabelled(tmp_path / "ct.safetensors", modalities=["CT"], dicom_window="brain")
    site = Site({"ct": head}, [])
    auto = site.prepare(ct, handlers.ImageOptions(), "ct")
    assert auto.window == "brain" and auto.image.meta["window"] == "centre 40, width 80"
    direct = handlers.load(ct, handlers.ImageOptions(window=(40.0, 80.0)))
    assert np.array_equal(auto.image.pixels, direct.pixels)
    chosen = site.prepare(ct, handlers.ImageOptions(window=(-600.0, 1500.0)), "ct")  # the user's window wins
    assert chosen.window is None and chosen.image.meta["window"] == "centre -600, width 1500"
    assert Site({"xray": str(SHIPPED)}, []).prepare(ct, handlers.ImageOptions(), "xray").window is None
    assert main(["predict", ct, "--checkpoint", head, "--json"]) == 0  # the command line reads it the same way
    assert json.loads(capsys.readouterr().out)[0]["image"]["window"] == "centre 40, width 80"


def test_the_chest_checkpoint_stays_the_default_whatever_else_is_installed():
    from spmamba.zoo import DEFAULT_CHECKPOINT

    first = next(iter(list_checkpoints().values()))
    assert Path(first).stem == DEFAULT_CHECKPOINT == SHIPPED.stem


@needs_checkpoint
def test_each_modalitys_default_is_the_checkpoint_chosen_for_it():
    """Rule 4 (docs/experiments-shift.md) makes a network its modality's default: it comes right after the chest
    default in every list, so the page, the API and the command line switch to it before an older checkpoint
    of the same modality that sorts before it by name."""
    from spmamba.zoo import DEFAULT_CHECKPOINT, MODALITY_DEFAULTS, modalities

    listed = list_checkpoints()
    stems = [Path(p).stem for p in listed.values()]
    assert MODALITY_DEFAULTS and stems[: 1 + len(MODALITY_DEFAULTS)] == [DEFAULT_CHECKPOINT, *MODALITY_DEFAULTS]
    chest = next(iter(listed))
    for label in list(listed)[1 : 1 + len(MODALITY_DEFAULTS)]:
        for modality in modalities(listed[label]):
            switched = f"Switched to a checkpoint trained on {modality} images."
            assert preselect(modality, listed, chest) == (label, switched)
