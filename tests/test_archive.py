"""Scoring an archive: manifests and folders in, one row per file out, on one process or a Dask cluster."""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from spmamba.archive import ANOMALY, SEGMENT, Item, Job, metrics_from_rows, read_inputs, read_rows, run
from spmamba.data import data_root
from tests.conftest import SHIPPED

ROOT = data_root()
needs_data = pytest.mark.skipif(
    ROOT is None or not SHIPPED.is_file(), reason="needs SPMAMBA_DATA and the shipped weights"
)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Item]:
    """16 real chest X-rays (normal and pneumonia, from the validation split) and one damaged file."""
    folder = tmp_path_factory.mktemp("archive")
    chosen = []
    for label, sub in ((0, "NORMAL"), (1, "PNEUMONIA")):
        chosen += [(p, label) for p in sorted((ROOT / "zhanglab" / "val" / sub).iterdir())[:8]]
    damaged = folder / "damaged.png"
    damaged.write_bytes(chosen[0][0].read_bytes()[:300])
    manifest = folder / "list.csv"
    rows = [(str(p), label) for p, label in chosen] + [("damaged.png", 1)]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(manifest, index=False)
    return read_inputs([str(manifest)])


def _table(path) -> pd.DataFrame:
    return read_rows(path).sort_values("file").reset_index(drop=True)


@needs_data
def test_manifest_folder_and_failed_files_become_rows(images, tmp_path):
    assert len(images) == 17 and images[-1].file.endswith("damaged.png") and images[-1].label == 1
    s = run(images, Job(ANOMALY, str(SHIPPED)), tmp_path / "out.csv", progress=False)
    assert (s.files, s.scored, s.failed) == (17, 16, 1)
    table = read_rows(tmp_path / "out.csv")
    assert list(table["file"]) == [it.file for it in images]  # in order, one each
    bad = table.iloc[-1]
    assert "damaged or truncated" in bad["error"] and pd.isna(bad["total"])
    assert table["error"].iloc[:-1].isna().all() and (table["checkpoint"].iloc[:-1] == SHIPPED.stem).all()
    with pytest.raises(FileExistsError, match="--resume"):
        run(images, Job(ANOMALY, str(SHIPPED)), tmp_path / "out.csv", progress=False)
    folder = read_inputs([str(ROOT / "ph2" / "images")])
    assert len(folder) == len(list((ROOT / "ph2" / "images").glob("*.png"))) and folder[0].label is None


@needs_data
def test_resume_after_an_interruption_completes_exactly_the_missing_files(images, tmp_path):
    """A run stopped after 10 files, its last line cut in half by the stop: --resume scores the rest, and
    every file is in the output once, the finished rows as they were."""
    out = tmp_path / "out.csv"
    run(images[:10], Job(ANOMALY, str(SHIPPED)), out, chunk=4, progress=False)
    text = out.read_text()
    out.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])  # the 10th row cut short
    before = read_rows(out)
    assert len(before) == 9
    s = run(images, Job(ANOMALY, str(SHIPPED)), out, resume=True, chunk=4, progress=False)
    assert s.skipped == 9 and s.scored + s.failed == 8
    after = read_rows(out)
    assert sorted(after["file"]) == sorted(it.file for it in images)  # all, none twice
    pd.testing.assert_frame_equal(
        after.iloc[:9].reset_index(drop=True), before.reset_index(drop=True), check_dtype=False
    )


@needs_data
def test_a_two_worker_cluster_writes_the_rows_one_process_writes_even_when_a_worker_dies(images, tmp_path):
    """The same rows from a local Dask cluster of 2 worker processes as from this process (Parquet), and when
    one worker is killed mid-run no file is lost and none is written twice. Rows are equal exactly when the
    processes run the network on as many threads (Dask's workers: one each): float sums in another order
    differ in their last bits, and a percentile may then move by a step."""
    import torch
    from dask.distributed import Client, LocalCluster

    job = Job(ANOMALY, str(SHIPPED))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):  # numpy's BLAS too (the domain check's distances)
            run(images, job, tmp_path / "one.parquet", chunk=4, progress=False)
    finally:
        torch.set_num_threads(threads)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run(images, job, tmp_path / "two.parquet", scheduler=cluster.scheduler_address, chunk=4, progress=False)
        pd.testing.assert_frame_equal(_table(tmp_path / "one.parquet"), _table(tmp_path / "two.parquet"))
        threshold = 0.3  # any: the figures are functions of the rows alone
        figures = [metrics_from_rows(_table(tmp_path / f"{n}.parquet"), threshold) for n in ("one", "two")]
        assert figures[0] == figures[1] and figures[0]["n_unreadable"] == 1

        with Client(cluster) as client:
            victim = next(iter(client.run(os.getpid).values()))
        out = tmp_path / "killed.parquet"
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (
                run(images, job, out, scheduler=cluster.scheduler_address, chunk=2, progress=False),
                done.set(),
            )
        )
        worker.start()
        while not list(out.glob("part-*.parquet")) and worker.is_alive():
            time.sleep(0.1)
        os.kill(victim, signal.SIGKILL)  # mid-run: some chunks written, others in flight on this worker
        worker.join(timeout=600)
        assert done.is_set()
    killed = _table(out)
    assert sorted(killed["file"]) == sorted(it.file for it in images)
    pd.testing.assert_frame_equal(killed, _table(tmp_path / "one.parquet"))


@needs_data
def test_segmentation_rows_carry_dice_against_a_manifests_masks(tmp_path):
    names = sorted((ROOT / "ph2" / "images").iterdir())[:4]
    manifest = tmp_path / "seg.csv"
    pd.DataFrame({"path": names, "mask": [ROOT / "ph2" / "masks" / n.name for n in names]}).to_csv(
        manifest, index=False
    )
    run(
        read_inputs([str(manifest)]), Job(SEGMENT, masks=str(tmp_path / "masks")), tmp_path / "rows.csv", progress=False
    )
    table = read_rows(tmp_path / "rows.csv")
    assert len(table) == 4 and table["error"].isna().all()
    assert (table["checkpoint"].str.startswith("ph2")).all() and table["dice"].between(0, 1).all()
    from PIL import Image

    from spmamba.export import mask_folder

    for row in table.itertuples():  # each row names its mask, in a folder named by a digest of the file's path
        (written,) = row.mask_files.split(";")
        assert Path(written) == mask_folder(tmp_path / "masks", row.file) / "lesion-mask.png"
        drawn = np.asarray(Image.open(written)) > 0
        assert int(drawn.sum()) == row.lesion_pixels and Path(row.file).stem not in written
