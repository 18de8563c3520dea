"""The Batch tab: many files or ZIPs in, each routed by ``spmamba.pipeline`` as the Analyse tab routes it,
one row per image out, with a CSV of the rows. Handlers first, the tab's layout and wiring last."""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import gradio as gr

from spmamba.imaging import ImageLoadError, image_suffix, is_zip
from spmamba.pipeline import Pipeline, Prepared, get_predictor, report

from .handlers import load
from .site import PRIVATE, Site, user_errors
from .uploads import with_names

BATCH_SIZE = 8  # images per network call
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_BYTES = 2 * 1024**3  # uncompressed, all members together
SCRATCH = Path(tempfile.gettempdir()) / "spmamba-studio"  # batch CSVs; purged after SCRATCH_TTL seconds
SCRATCH_TTL = 3600


@dataclass
class BatchItem:
    name: str  # as the user knows it: the file name, or the path inside the ZIP
    path: Path | None
    error: str | None = None


def expand_uploads(paths: list[str], workdir: Path) -> list[BatchItem]:
    """Uploaded files as items; each ZIP's images are written under ``workdir`` with neutral numbered names.

    Member names are never used as paths, so a name like ``../../etc/passwd`` cannot write outside
    ``workdir``; such names are reported and skipped.
    """
    items: list[BatchItem] = []
    for p in paths:
        shown = getattr(p, "orig_name", None) or Path(p).name  # the browser's name; the stored one is neutral
        p = Path(p)
        with open(p, "rb") as fh:
            archive = is_zip(fh.read(4))  # by its first bytes, as the loader decides: a PNG + ZIP is a PNG
        if not archive:
            items.append(BatchItem(shown, p))
            continue
        try:
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) > MAX_ZIP_MEMBERS:
                    items.append(
                        BatchItem(
                            shown, None, f"the ZIP holds {len(members)} files, more than the {MAX_ZIP_MEMBERS} allowed"
                        )
                    )
                    continue
                if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                    items.append(
                        BatchItem(shown, None, f"the ZIP expands to more than {MAX_ZIP_BYTES / 1024**3:.0f} GiB")
                    )
                    continue
                for m in members:
                    name = m.filename
                    parts = PurePosixPath(name.replace("\\", "/")).parts
                    base = parts[-1] if parts else ""
                    if name.startswith(("/", "\\")) or ".." in parts or ":" in (parts[0] if parts else ""):
                        items.append(
                            BatchItem(
                                f"{shown}: {name}", None, "unsafe path inside the ZIP (absolute or with '..'); skipped"
                            )
                        )
                        continue
                    if base.startswith(".") or "__MACOSX" in parts:
                        continue  # Finder and editor debris, not images
                    target = workdir / f"{len(items):05d}{image_suffix(base)}"
                    with zf.open(m) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    items.append(BatchItem(f"{shown}: {name}", target))
        except (zipfile.BadZipFile, OSError, EOFError):
            items.append(BatchItem(shown, None, "the ZIP is damaged or cut short and cannot be read"))
    return items


def scratch_dir() -> Path:
    """A fresh folder for one request's downloads; folders older than SCRATCH_TTL are removed first."""
    now = time.time()
    if SCRATCH.is_dir():
        for d in SCRATCH.iterdir():
            if now - d.stat().st_mtime > SCRATCH_TTL:
                shutil.rmtree(d, ignore_errors=True)
    out_dir = SCRATCH / uuid.uuid4().hex
    out_dir.mkdir(parents=True)
    return out_dir


BATCH_COLUMNS = ["file", "checkpoint", "in domain", "score", "verdict", "normal percentile", "modality", "message"]


def score_files(
    paths: list[str] | None,
    pipeline: Pipeline,
    checkpoint: str | None = None,
    progress: Callable[[float, str], object] | None = None,
) -> tuple[list[list], Path]:
    """Score every image in ``paths`` (ZIPs expanded), each routed by the pipeline as the Analyse tab routes
    it (``checkpoint``, when given, is kept for every file), batched per checkpoint.

    Returns the table rows (BATCH_COLUMNS) and a CSV of them; unreadable files become rows with a
    message rather than stopping the batch.
    """
    if not paths:
        raise ImageLoadError("no files were given")
    out_dir = scratch_dir()
    with tempfile.TemporaryDirectory(prefix="spmamba-zip-") as work:
        items = expand_uploads(list(paths), Path(work))
        rows: list[list] = [[] for _ in items]  # filled in input order
        pending: dict[str, list[tuple[int, BatchItem, Prepared]]] = {}

        def flush(path: str):
            predictor = get_predictor(path)
            group = pending.pop(path)
            scores = predictor.score(predictor.maps([ready.image.grey for _, _, ready in group]))
            for k, (i, item, ready) in enumerate(group):
                r = report(predictor, scores, ready, k)
                pct = r["percentile_among_normal"]
                rows[i] = [
                    item.name,
                    r["checkpoint"],
                    r["in_domain"],
                    round(r["scores"]["total"], 4),
                    r["verdict"],
                    None if pct is None else round(pct, 1),
                    ready.image.meta.get("Modality", ""),
                    " ".join(r["notes"]),
                ]

        for i, item in enumerate(items):
            if progress is not None:
                progress(i / max(len(items), 1), f"{i}/{len(items)} images")
            if item.error is None:
                try:
                    ready = pipeline.prepare(str(item.path), load, chosen=checkpoint, keep=bool(checkpoint))
                    pending.setdefault(ready.route.path, []).append((i, item, ready))
                except ImageLoadError as err:
                    item.error = str(err).replace(item.path.name, item.name)
            if item.error is not None:
                rows[i] = [item.name, None, None, None, "error", None, "", item.error]
            for path in [p for p, group in pending.items() if len(group) == BATCH_SIZE]:
                flush(path)
        for path in list(pending):
            flush(path)
    csv_path = out_dir / "spmamba-batch-scores.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(BATCH_COLUMNS)
        writer.writerows(rows)
    return rows, csv_path


def batch_tab(site: Site) -> None:
    """Many files or ZIPs, each routed as the Analyse tab routes it; a sortable table and a CSV."""
    with gr.Tab("Batch"):
        gr.Markdown(
            "Score many images at once. Each goes to the checkpoint whose training images it resembles (or to the "
            "one chosen, when kept); images unlike every training set get no verdict. ZIP files are opened; "
            "files that cannot be read are listed with the reason."
        )
        with gr.Row():
            files = with_names(
                gr.File(
                    file_count="multiple",
                    type="filepath",
                    label="Images or ZIP files",
                    elem_id="batch-files",
                    height=240,  # a long list scrolls inside the box instead of pushing the results down the page
                )
            )
            with gr.Column():
                model = gr.Dropdown(site.labels, value=site.default, label="Checkpoint")
                keep = gr.Checkbox(False, label="Use this checkpoint for every file")
                go = gr.Button("Score all", variant="primary")
                csv_file = gr.File(label="Scores as CSV")
        table = gr.Dataframe(
            headers=BATCH_COLUMNS,
            interactive=False,
            wrap=True,
            label="Scores (click a column header to sort)",
            elem_id="batch-table",
            column_widths=["18%", "14%", "6%", "7%", "14%", "8%", "7%", "26%"],
        )

    @user_errors
    def score(paths, label, keep_v, progress=gr.Progress()):
        rows, csv_path = score_files(paths, site.pipeline, site.path(label) if keep_v else None, progress)
        return {table: rows, csv_file: str(csv_path)}

    go.click(score, [files, model, keep], [table, csv_file], concurrency_id="batch", concurrency_limit=1, **PRIVATE)
