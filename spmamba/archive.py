"""Scoring an archive: files, folders and manifests in; one row per file out, written as it is made, on one
process or on a Dask cluster.

The unit of work is a *chunk* of files (paths travel, never pixels); :func:`score_chunk` routes and scores
one chunk exactly as ``spmamba predict`` would, file by file through :mod:`spmamba.pipeline`, and returns
its rows. A failed file is a row with its reason. The single-process path and the cluster path call the
same function on the same chunks, so they write the same rows; ``spmamba evaluate`` computes its figures
from these rows too.

On a cluster (:func:`run` with ``workers`` or ``scheduler``), each worker process loads a checkpoint once
(the pipeline's per-process cache), picks its own device, and reads its files itself; rows come back to the
client, which alone writes the output. A worker that dies loses nothing: Dask re-runs its unfinished chunks
elsewhere, and only finished chunks are written, once each.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .imaging import ImageLoadError
from .pipeline import ANOMALY, SEGMENT

CHUNK = 16  # files per task: big enough to batch the network, small enough to spread over workers
ROUTE_COLUMNS = ["checkpoint", "in_domain", "domain_percentile", "nearest_checkpoint"]
SCORE_COLUMNS = ["total", "reconstruction", "prototype", "concentration", "contrast"]
COLUMNS = {
    ANOMALY: ["file", "label", *ROUTE_COLUMNS, *SCORE_COLUMNS, "verdict", "above_threshold"]
    + ["percentile_among_normal", "notes", "error"],
    SEGMENT: ["file", "mask", *ROUTE_COLUMNS, "lesion_pixels", "share_of_image", "dice", "iou", "mask_files"]
    + ["notes", "error"],
}


@dataclass(frozen=True)
class Item:
    """One file to score, with what a manifest may say about it."""

    file: str
    label: int | None = None  # 0 normal, 1 abnormal (evaluation)
    mask: str | None = None  # a ground-truth mask (segmentation: Dice and IoU)


@dataclass(frozen=True)
class Job:
    """What every chunk of one run does: the family, and a checkpoint to keep (None: route each file)."""

    family: str = ANOMALY
    checkpoint: str | None = None
    ablations: bool = False  # evaluation: also the total under each score ablation (see scoring.ablation_weights)
    masks: str | None = None  # segmentation: write each file's mask under this folder (export.mask_folder)


def read_inputs(names: Iterable[str]) -> list[Item]:
    """Files as given; folders become their image files, recursively (:func:`pipeline.expand_inputs`); a
    ``.csv`` or ``.parquet`` manifest gives ``path`` and optionally ``label`` and ``mask`` columns, relative
    paths read from the manifest's folder."""
    from .pipeline import expand_inputs

    items: list[Item] = []
    for name in names:
        if Path(name).suffix.lower() in (".csv", ".parquet") and Path(name).is_file():
            items += _manifest(Path(name))
        else:
            items += [Item(f) for f in expand_inputs([name])]
    return items


def _manifest(path: Path) -> list[Item]:
    import pandas as pd

    table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str)
    if "path" not in table.columns:
        raise ValueError(f"{path.name} has no 'path' column (columns: {', '.join(map(str, table.columns))})")

    def resolved(value) -> str | None:
        if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
            return None
        return str(path.parent / str(value).strip())

    out = []
    for row in table.to_dict("records"):
        label = row.get("label")
        label = None if label is None or str(label).strip() in ("", "nan", "None") else int(float(label))
        out.append(Item(resolved(row["path"]), label, resolved(row.get("mask"))))
    return out


def chunks(items: list[Item], size: int = CHUNK) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@functools.lru_cache(maxsize=4)
def _pipeline(job: Job):
    """One pipeline per process and job: on a worker, the checkpoints it loads stay loaded for every chunk."""
    from .hub import resolve_checkpoint
    from .pipeline import Pipeline

    if job.checkpoint is None:
        return Pipeline()
    chosen = {job.checkpoint: resolve_checkpoint(job.checkpoint)}  # a Hub reference, on the worker's own machine
    return Pipeline(chosen, {}) if job.family == ANOMALY else Pipeline({}, chosen)


def score_chunk(job: Job, items: list[Item]) -> list[dict]:
    """Route and score ``items`` (one network call per checkpoint for the anomaly family); one row each, in
    order, a file that cannot be read a row with its reason."""
    return _anomaly_rows(job, items) if job.family == ANOMALY else [_segment_row(job, item) for item in items]


def _anomaly_rows(job: Job, items: list[Item]) -> list[dict]:
    from .pipeline import get_predictor, report
    from .scoring import ablation_weights

    pipe = _pipeline(job)
    rows: list[dict | None] = [None] * len(items)
    ready, groups = {}, {}
    for i, item in enumerate(items):
        try:
            ready[i] = pipe.prepare(item.file, chosen=job.checkpoint, keep=job.checkpoint is not None)
            groups.setdefault(ready[i].route.path, []).append(i)
        except ImageLoadError as err:
            rows[i] = _failed(ANOMALY, item, str(err))
    for path, members in groups.items():
        predictor = get_predictor(path)
        maps = predictor.maps([ready[i].image.grey for i in members])
        scores = predictor.score(maps)
        ablated = {}
        if job.ablations:  # evaluation only: five more scorings of the same maps
            ablated = {n: predictor.score(maps, w).total for n, w in ablation_weights(predictor.weights).items()}
        for k, i in enumerate(members):
            r = report(predictor, scores, ready[i], k)
            row = {
                **_empty(ANOMALY),
                "file": items[i].file,
                "label": items[i].label,
                **{c: r.get(c) for c in ROUTE_COLUMNS},
                **{c: r["scores"][c] for c in SCORE_COLUMNS},
                "verdict": r["verdict"],
                "above_threshold": r["above_threshold"],
                "percentile_among_normal": r["percentile_among_normal"],
                "notes": " ".join(r["notes"]),
            }
            row.update({f"ablation:{name}": float(t[k]) for name, t in ablated.items()})
            rows[i] = row
    return rows


def _segment_row(job: Job, item: Item) -> dict:
    from . import __version__
    from .export import export_mask, mask_folder
    from .pipeline import get_segmenter
    from .seg.data import load_truth_mask
    from .seg.metrics import dice, iou

    try:
        kept = job.checkpoint is not None
        ready = _pipeline(job).prepare(item.file, family=SEGMENT, chosen=job.checkpoint, keep=kept)
        segmenter = get_segmenter(ready.route.path)
        mask = segmenter.probabilities(ready.image.pixels) >= segmenter.threshold
        truth = load_truth_mask(item.mask, mask.shape)
        written, notes = [], list(ready.route.notes)
        if job.masks:
            written, more = export_mask(
                mask,
                item.file,
                ready.image.meta,
                mask_folder(job.masks, item.file),
                Path(ready.route.path).stem,
                __version__,
            )
            notes += more
    except ImageLoadError as err:
        return _failed(SEGMENT, item, str(err))
    return {
        **_empty(SEGMENT),
        "file": item.file,
        "mask": item.mask,
        **{c: v for c, v in ready.route.to_dict().items() if c in ROUTE_COLUMNS},
        "checkpoint": Path(ready.route.path).stem,
        "lesion_pixels": int(mask.sum()),
        "share_of_image": float(mask.mean()),
        "dice": None if truth is None else float(dice(mask, truth)),
        "iou": None if truth is None else float(iou(mask, truth)),
        "mask_files": ";".join(str(f) for f in written) or None,
        "notes": " ".join(notes),
    }


def _empty(family: str) -> dict:
    return dict.fromkeys(COLUMNS[family])


def _failed(family: str, item: Item, reason: str) -> dict:
    row = {**_empty(family), "file": item.file, "error": reason}
    row["label" if family == ANOMALY else "mask"] = item.label if family == ANOMALY else item.mask
    return row


class RowWriter:
    """Rows appended to a CSV (one line per row, flushed) or a Parquet folder (one part file per chunk), so an
    interrupted run keeps every finished row and ``done`` tells ``--resume`` which files those are."""

    def __init__(self, out: str | Path, columns: list[str], resume: bool = False):
        self.out, self.columns = Path(out), list(columns)
        self.parquet = self.out.suffix.lower() == ".parquet"
        exists = self.out.exists() and (not self.parquet or any(self.out.glob("part-*.parquet")))
        if exists and not resume:
            raise FileExistsError(f"{self.out} exists: pass --resume to complete it, or choose another output")
        if exists and not self.parquet:
            _drop_partial_line(self.out)  # a row the interruption cut short is scored again
        self.done = set(read_rows(self.out)["file"]) if exists else set()
        if self.parquet:
            self.out.mkdir(parents=True, exist_ok=True)
            self._parts = len(list(self.out.glob("part-*.parquet")))
        elif not exists:
            with open(self.out, "w", newline="") as fh:
                csv.writer(fh).writerow(self.columns)

    def append(self, rows: list[dict]) -> None:
        rows = [r for r in rows if r["file"] not in self.done]
        if not rows:
            return
        if self.parquet:
            import pandas as pd

            table = pd.DataFrame([{c: _cell(r.get(c)) for c in self._all(rows)} for r in rows])
            part = self.out / f"part-{self._parts:06d}.parquet"
            table.to_parquet(part.with_suffix(".tmp"), index=False)
            part.with_suffix(".tmp").rename(part)  # a part is there whole or not at all
            self._parts += 1
        else:
            with open(self.out, "a", newline="") as fh:
                w = csv.writer(fh)
                for r in rows:
                    w.writerow([_cell(r.get(c)) for c in self.columns])
                fh.flush()
        self.done.update(r["file"] for r in rows)

    def _all(self, rows: list[dict]) -> list[str]:
        extra = [k for k in rows[0] if k not in self.columns]
        return self.columns + extra


def _cell(value):
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def read_rows(path: str | Path):
    """An output (CSV, or a Parquet folder or file) as a DataFrame; a CSV's last line cut short by an
    interruption (no line end yet) is left out."""
    import io

    import pandas as pd

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()
    text = path.read_text()
    return pd.read_csv(io.StringIO(text[: text.rfind("\n") + 1]))


def _drop_partial_line(path: Path) -> None:
    """Truncate a CSV after its last complete line, so rows appended next start on a line of their own."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)


@dataclass
class Summary:
    files: int
    skipped: int  # already in the output (--resume)
    scored: int
    failed: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return (self.scored + self.failed) / self.seconds if self.seconds > 0 else float("nan")


def run(
    items: list[Item],
    job: Job,
    out: str | Path,
    resume: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    chunk: int = CHUNK,
    progress: bool = True,
) -> Summary:
    """Score ``items`` into ``out``: in this process, on a local Dask cluster of ``workers`` processes, or on
    the cluster at ``scheduler``. Rows are written as chunks finish; with ``resume``, files the output already
    holds are skipped."""
    from tqdm import tqdm

    columns = COLUMNS[job.family] + (_ablation_columns(job) if job.ablations else [])
    writer = RowWriter(out, columns, resume)
    todo = [it for it in items if it.file not in writer.done]
    start, failed = time.perf_counter(), 0
    bar = tqdm(total=len(todo), unit="img", disable=not progress, smoothing=0.1)
    for rows in _results(job, chunks(todo, chunk), workers, scheduler):
        writer.append(rows)
        failed += sum(r["error"] is not None for r in rows)
        bar.update(len(rows))
    bar.close()
    seconds = time.perf_counter() - start
    return Summary(len(items), len(items) - len(todo), len(todo) - failed, failed, seconds)


def collect(items: list[Item], job: Job, workers: int | None = None, scheduler: str | None = None, chunk: int = CHUNK):
    """The rows of ``items`` as a DataFrame in their order, made here or on a cluster, written nowhere."""
    import pandas as pd

    order = {it.file: k for k, it in enumerate(items)}
    rows = [r for part in _results(job, chunks(items, chunk), workers, scheduler) for r in part]
    return pd.DataFrame(sorted(rows, key=lambda r: order[r["file"]]))


def _ablation_columns(job: Job) -> list[str]:
    from .scoring import ScoreWeights, ablation_weights

    return [f"ablation:{name}" for name in ablation_weights(ScoreWeights())]


def _results(job: Job, parts: list[list[Item]], workers: int | None, scheduler: str | None) -> Iterator[list[dict]]:
    """Each chunk's rows as it finishes: here, or from a Dask cluster in the order they complete."""
    if not workers and not scheduler:
        yield from map(functools.partial(score_chunk, job), parts)
        return
    with cluster_client(workers, scheduler) as client:
        from dask.distributed import as_completed

        futures = [client.submit(score_chunk, job, part, pure=False) for part in parts]
        for future in as_completed(futures):
            yield future.result()
            future.release()


class cluster_client:
    """A Dask client on a new local cluster of ``workers`` single-threaded processes (one per core; on a GPU
    node, start one worker per GPU with dask-cuda and pass its ``scheduler``), or on an existing one."""

    def __init__(self, workers: int | None, scheduler: str | None):
        self.workers, self.scheduler, self.cluster, self.client = workers, scheduler, None, None

    def __enter__(self):
        from dask.distributed import Client, LocalCluster

        if self.scheduler:
            self.client = Client(self.scheduler)
        else:
            self.cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def metrics_from_rows(rows, threshold: float | None) -> dict:
    """Image metrics (AUROC with its interval, accuracy and F1 at ``threshold``), the rate of normals flagged,
    and the AUROC of each score ablation, from the rows of labelled files: what ``spmamba evaluate`` reports,
    whichever way the rows were made."""
    from .metrics import image_metrics, image_metrics_with_intervals

    scored = rows[rows["error"].isna()] if "error" in rows else rows
    labels, totals = scored["label"].to_numpy(int), scored["total"].to_numpy(float)
    out = {
        "n_normal": int((labels == 0).sum()),
        "n_abnormal": int((labels == 1).sum()),
        "n_unreadable": int(len(rows) - len(scored)),
        "image": image_metrics_with_intervals(totals, labels, threshold),
        "ablation_auroc": {
            c.split(":", 1)[1]: image_metrics(scored[c].to_numpy(float), labels)["auroc"]
            for c in scored.columns
            if c.startswith("ablation:")
        },
    }
    if threshold is not None:
        out["normal_flagged_rate"] = float((totals[labels == 0] >= threshold).mean())
    return out
