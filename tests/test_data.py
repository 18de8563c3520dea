"""Dataset layouts and the patient-disjoint validation split."""
from pathlib import Path

import numpy as np
from PIL import Image

from spmamba.data import Sample, discover, patient_disjoint, patient_id


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


def test_discover_is_patient_disjoint(tmp_path):
    img = Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8))
    for split, cls, name in [("train", "NORMAL", "IM-0001-0001.png"), ("train", "NORMAL", "IM-0002-0001.png"),
                             ("val", "NORMAL", "IM-0002-0002.png"), ("val", "PNEUMONIA", "person1_virus_1.png")]:
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        img.save(tmp_path / split / cls / name)
    s = discover(tmp_path)
    assert [x.path.name for x in s.train] == ["IM-0001-0001.png"]
    assert sorted(x.path.name for x in s.val if x.label == 0) == ["IM-0002-0001.png", "IM-0002-0002.png"]
    assert s.moved_to_val == 1
