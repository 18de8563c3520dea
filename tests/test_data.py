"""Dataset layouts and the patient-disjoint validation split."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spmamba.data import Sample, discover, patient_disjoint, patient_id
from tests.conftest import write_synthetic


def test_patient_ids_from_file_names():
    assert patient_id("IM-0115-0001.jpeg") == "IM-0115"
    assert patient_id("IM-0429-0001-0002.jpeg") == "IM-0429"
    assert patient_id("NORMAL2-IM-1234-0001.jpeg") == "NORMAL2-IM-1234"
    assert patient_id("person1003_virus_1685.jpeg") == "person1003"
    assert patient_id("TCGA_CS_4941_19960909_12.png") == "TCGA_CS_4941"
    assert patient_id("chest.png") is None


def test_patient_disjoint_moves_training_images_of_validation_patients():
    train = [Sample(Path(n), 0) for n in ("IM-0001-0001.jpeg", "IM-0002-0001.jpeg", "IM-0002-0002.jpeg", "x.png")]
    val = [Sample(Path("IM-0002-0003.jpeg"), 0), Sample(Path("person7_virus_1.jpeg"), 1)]
    kept, new_val, moved = patient_disjoint(train, val)
    assert [s.path.name for s in kept] == ["IM-0001-0001.jpeg", "x.png"]
    assert moved == 2 and len(new_val) == 4
    assert not {patient_id(s.path) for s in kept} & {patient_id(s.path) for s in new_val} - {None}


def test_discover_is_patient_disjoint_and_holds_out_the_lowest_numbered_patients(tmp_path):
    """Ten normal patients IM-0001..0010 and ten pneumonia patients: the lowest 15% of each series' numbers
    (1 and 2) form the shift split, away from training and in-pool validation; IM-0009, which has a
    validation image, moves to validation as before."""
    img = Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8))
    files = [("train", "NORMAL", f"IM-{i:04d}-0001.png") for i in range(1, 11)]
    files += [("val", "NORMAL", "IM-0009-0002.png"), ("val", "NORMAL", "IM-0002-0002.png")]
    files += [("val", "PNEUMONIA", f"person{i}_virus_{i}.png") for i in range(1, 11)]
    for split, cls, name in files:
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        img.save(tmp_path / split / cls / name)
    s = discover(tmp_path)
    assert [x.path.name for x in s.train] == [f"IM-{i:04d}-0001.png" for i in (3, 4, 5, 6, 7, 8, 10)]
    assert sorted(x.path.name for x in s.val if x.label == 0) == ["IM-0009-0001.png", "IM-0009-0002.png"]
    assert s.moved_to_val == 1
    assert sorted(x.path.name for x in s.shift_val) == [
        "IM-0001-0001.png",
        "IM-0002-0001.png",
        "IM-0002-0002.png",
        "person1_virus_1.png",
        "person2_virus_2.png",
    ]
    assert "lowest 15%" in s.shift_rule
    groups = [{patient_id(x.path) for x in part} for part in (s.train, s.val, s.shift_val)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_tcga_slices_are_held_out_by_site():
    from spmamba.data import TCGA_SHIFT_SITE, acquisition_group

    samples = [
        Sample(Path(f"TCGA_{site}_{n}_19990101_{k}.png"), 0)
        for site in ("CS", "DU", TCGA_SHIFT_SITE)
        for n in ("A1", "B2")
        for k in (1, 2)
    ]
    held, rule = acquisition_group(samples)
    assert held == {f"TCGA_{TCGA_SHIFT_SITE}_A1", f"TCGA_{TCGA_SHIFT_SITE}_B2"} and TCGA_SHIFT_SITE in rule
    assert acquisition_group([Sample(Path("scan_a.png"), 0)]) == (set(), "")


@pytest.mark.parametrize("layout", ["mvtec", "bmad"])
def test_mask_layouts(tmp_path, layout):
    from spmamba.data import labelled_folder

    rng = np.random.default_rng(3)
    test = tmp_path / "brain" / "test"
    for i in range(3):
        if layout == "mvtec":  # category/test/<class>/x.png + category/ground_truth/<class>/x_mask.png
            write_synthetic(test / "good" / f"g{i}.png", rng, False)
            mask = write_synthetic(test / "Ungood" / f"u{i}.png", rng, True)
            gt = test.parent / "ground_truth" / "Ungood" / f"u{i}_mask.png"
        else:  # BMAD: test/<class>/img/x.png + test/<class>/label/x.png
            write_synthetic(test / "good" / "img" / f"g{i}.png", rng, False)
            mask = write_synthetic(test / "Ungood" / "img" / f"u{i}.png", rng, True)
            gt = test / "Ungood" / "label" / f"u{i}.png"
        gt.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8) * 255).save(gt)
    samples = labelled_folder(test)
    assert [s.label for s in samples] == [0, 0, 0, 1, 1, 1]
    assert all(s.mask is None for s in samples[:3])
    assert all(s.mask is not None and s.mask.stem.startswith(s.path.stem) for s in samples[3:])


def test_csv_list(tmp_path):
    from spmamba.data import csv_list

    rng = np.random.default_rng(4)
    write_synthetic(tmp_path / "imgs" / "a.png", rng, False)
    write_synthetic(tmp_path / "imgs" / "b.png", rng, True)
    (tmp_path / "list.csv").write_text("path,label\nimgs/a.png,0\nimgs/b.png,1\n")
    listed = csv_list(tmp_path / "list.csv")
    assert [(s.path.name, s.label) for s in listed] == [("a.png", 0), ("b.png", 1)]
    assert all(s.path.is_file() for s in listed)


def _dataset_with_problems(root: Path) -> None:
    """Every kind of problem ``spmamba data check`` reports, once."""
    rng = np.random.default_rng(0)
    for i in range(3):
        write_synthetic(root / "train" / "NORMAL" / f"TCGA_AA_{i:04d}_2000_1.png", rng, False)
    write_synthetic(root / "val" / "NORMAL" / "TCGA_AA_0001_2000_9.png", rng, False)  # patient on both sides
    shutil.copy(root / "train/NORMAL/TCGA_AA_0000_2000_1.png", root / "val/NORMAL/copy.png")  # the same image
    for name in ("TCGA_BB_0001_2000_1.png", "TCGA_BB_0001_2000_2.png"):
        mask = write_synthetic(root / "val" / "TUMOR" / name, rng, True)
        if name.endswith("_1.png"):
            (root / "ground_truth" / "TUMOR").mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / "ground_truth" / "TUMOR" / name)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "ground_truth" / "TUMOR" / "nobody.png")
    (root / "val" / "TUMOR" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def test_data_check_finds_each_problem(tmp_path):
    from spmamba.datacheck import check

    _dataset_with_problems(tmp_path)
    r = check(tmp_path)
    assert r.counts == {"train": {"NORMAL": 3}, "val": {"NORMAL": 2, "TUMOR": 3}}
    assert r.masks["val"] == {"TUMOR": 1}
    assert sorted(p.name for p in r.missing_masks) == ["TCGA_BB_0001_2000_2.png", "broken.png"]
    assert [p.name for p in r.orphan_masks] == ["nobody.png"]
    assert [p.name for p, _ in r.unreadable] == ["broken.png"]
    assert [sorted(p.name for _, p in g) for g in r.cross_split_duplicates] == [["TCGA_AA_0000_2000_1.png", "copy.png"]]
    assert r.shared_patients == {"TCGA_AA_0001": ["train", "val"]}
    assert r.problems == 2 + 1 + 1 + 1 + 1


def test_near_duplicate_pairs_match_the_full_correlation_matrix():
    from spmamba.datacheck import near_duplicate_pairs

    rng = np.random.default_rng(0)
    a = rng.normal(size=(700, 16)).astype(np.float32)  # more rows than one block
    a[650] = a[3] + 0.01 * rng.normal(size=16)
    a[10] = a[600]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    full = a @ a.T
    expected = {(i, j) for i in range(700) for j in range(i + 1, 700) if full[i, j] >= 0.9}
    assert {(i, j) for i, j, _ in near_duplicate_pairs(a, r=0.9)} == expected >= {(3, 650), (10, 600)}
    b = a[:5]
    assert {(i, j) for i, j, _ in near_duplicate_pairs(b, a, r=0.9)} == {
        (i, j) for i in range(5) for j in range(700) if full[i, j] >= 0.9
    }


def test_data_check_reports_a_resized_brightened_copy_as_near_identical(tmp_path, capsys):
    from spmamba.cli import main
    from spmamba.datacheck import check

    rng = np.random.default_rng(2)
    for i in range(4):
        write_synthetic(tmp_path / "train" / "NORMAL" / f"{i}.png", rng, False)
    grey = np.asarray(Image.open(tmp_path / "train" / "NORMAL" / "2.png").convert("L"), np.float32)
    recaptured = Image.fromarray(np.clip(grey * 0.8 + 30, 0, 255).astype(np.uint8)).resize((97, 97))
    (tmp_path / "val" / "NORMAL").mkdir(parents=True)
    recaptured.save(tmp_path / "val" / "NORMAL" / "again.png")
    shutil.copy(tmp_path / "train" / "NORMAL" / "0.png", tmp_path / "val" / "NORMAL" / "copy.png")  # identical
    write_synthetic(tmp_path / "train" / "NORMAL" / "TCGA_AA_0001_2000_1.png", rng, False)
    neighbour = Image.open(tmp_path / "train" / "NORMAL" / "TCGA_AA_0001_2000_1.png").resize((90, 90))
    neighbour.save(tmp_path / "train" / "NORMAL" / "TCGA_AA_0001_2000_2.png")  # one patient's next slice: not listed
    r = check(tmp_path)
    assert [(a, pa.name, b, pb.name) for (a, pa), (b, pb), _ in r.near_duplicates] == [
        ("train", "2.png", "val", "again.png")
    ]
    assert r.near_duplicates[0][2] > 0.98 and r.problems == 1  # the identical copy only
    assert main(["data", "check", str(tmp_path)]) == 1
    assert "train:train/NORMAL/2.png ~ val:val/NORMAL/again.png" in capsys.readouterr().out


def test_data_check_cli_exit_status_and_clean_segmentation_folder(tmp_path, capsys):
    from spmamba.cli import main

    _dataset_with_problems(tmp_path / "bad")
    assert main(["data", "check", str(tmp_path / "bad")]) == 1
    assert capsys.readouterr().out.strip().endswith("PROBLEMS=6")
    rng = np.random.default_rng(1)
    for i in range(2):
        mask = write_synthetic(tmp_path / "seg" / "images" / f"{i}.png", rng, True)
        (tmp_path / "seg" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "seg" / "masks" / f"{i}.png")
    assert main(["data", "check", str(tmp_path / "seg")]) == 0
    out = capsys.readouterr().out
    assert "segmentation layout" in out and "images 2 (images, 2 with masks)" in out
