"""The Compare tab: the analysed image's anomaly maps from two to four checkpoints side by side, on one colour
scale, each with its score, its validation AUROC and the scan order it was trained with.

It answers "what does the scan order (or the prototype module) change?" on one image: the research checkpoints
of ``weights/ablations/`` (scan-order and prototype ablations, kept out of the shipped list) are offered here
when present. Handlers are plain functions; ``compare_tab`` lays out and wires.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from spmamba.checkpoint import read_metadata
from spmamba.hub import CHECKOUT_WEIGHTS
from spmamba.pipeline import Pipeline, get_predictor
from spmamba.visualize import OPACITY, overlay
from spmamba.zoo import list_checkpoints

from . import handlers
from .render import colour_bar, scan_figure
from .site import NETWORK_CONCURRENCY, PRIVATE, Site, user_errors

MAX_PANELS = 4
RESEARCH = CHECKOUT_WEIGHTS / "ablations"  # git-ignored: present on the machine that trained them
SCAN_SIZE = 16  # the thumbnail's map size: the decoder's 16×16 stage


@dataclass
class Panel:
    """One checkpoint's view of the image."""

    name: str
    amap: np.ndarray  # at the checkpoint's input size
    total: float
    verdict: str  # the page's short verdict for this checkpoint
    auroc: str  # its validation AUROC with interval, as its card states it
    scan_order: str
    directions: int
    prototypes: int  # prototype banks; 0: the module is off


def choices(site: Site) -> dict[str, str]:
    """{label: path}: the shipped anomaly checkpoints, then the research ones found in ``weights/ablations/``."""
    research = list_checkpoints(RESEARCH) if RESEARCH.is_dir() else {}
    return {**site.checkpoints, **{f"{label} (research)": path for label, path in research.items()}}


def _auroc(v: dict) -> str:
    lo, hi = v.get("auroc_ci95") or (None, None)
    interval = f" ({100 * lo:.1f}–{100 * hi:.1f})" if lo is not None else ""
    return f"{100 * v['auroc']:.1f}{interval}"


def validation_auroc(path: str) -> str:
    """The in-pool figure, and where the checkpoint held another acquisition group out, that group's: the two
    can rank the same networks differently (docs/scan-order.md), so a panel shows both."""
    metrics = read_metadata(path)["metrics"]
    shift = metrics.get("shift_validation")
    return _auroc(metrics["validation"]) + (f"; another acquisition group {_auroc(shift)}" if shift else "")


def compare(offered: dict[str, str], analysis: handlers.Analysis | None, labels: list[str]) -> list[Panel]:
    """Each chosen checkpoint on the analysed file, loaded as the Analyse tab loads it with that checkpoint kept
    (its own CT window included), so a panel's score is the one Analyse shows for it."""
    if analysis is None or analysis.source is None:
        raise gr.Error("Analyse an image on the Analyse tab first; Compare shows its maps.", print_exception=False)
    if not 2 <= len(labels) <= MAX_PANELS:
        raise gr.Error(f"Choose from 2 to {MAX_PANELS} checkpoints to compare.", print_exception=False)
    path, options = analysis.source
    pipeline = Pipeline({label: offered[label] for label in labels}, {})
    panels = []
    for label in labels:
        ready = pipeline.prepare(path, functools.partial(handlers.load, options=options), chosen=label, keep=True)
        predictor = get_predictor(offered[label])
        scores = predictor.score(predictor.maps([ready.image.grey]))
        total = float(scores.total[0])
        cfg = predictor.model.config
        panels.append(
            Panel(
                Path(offered[label]).stem,
                scores.anomaly_map[0].numpy(),
                total,
                predictor.judge(total, ready.image.meta, ready.route.in_domain).to_dict()["verdict"],
                validation_auroc(offered[label]),
                cfg.scan_order,
                cfg.num_directions,
                cfg.prototype_banks,
            )
        )
    return panels


def shared_range(panels: list[Panel]) -> tuple[float, float]:
    """One colour scale for every panel: the lowest and highest value of all their maps."""
    return min(float(p.amap.min()) for p in panels), max(float(p.amap.max()) for p in panels)


def caption(p: Panel) -> str:
    prototypes = f"{p.prototypes} prototype banks" if p.prototypes else "prototype module off"
    return (
        f"**{p.name}**  \nscore {p.total:.4g} — {p.verdict}  \nvalidation AUROC {p.auroc}  \n"
        f"{p.scan_order.replace('_', '-')} scan × {p.directions} directions, {prototypes}"
    )


def scan_thumbnail(p: Panel) -> go.Figure:
    fig = scan_figure(p.scan_order, SCAN_SIZE, p.directions, 0, None)
    fig.update_layout(height=220, title=None, showlegend=False, margin=dict(l=5, r=5, t=5, b=5))
    return fig


def compare_tab(site: Site, state: gr.State) -> None:
    """Pick checkpoints, compare their maps of the image analysed on the Analyse tab."""
    offered = choices(site)
    with gr.Tab("Compare"):
        gr.Markdown(
            "The image analysed on the **Analyse** tab, through two to four checkpoints at once: each map on "
            "**one colour scale**, with its score, its validation AUROC (95% interval; also on another "
            "acquisition group where the checkpoint held one out) and the scan order it was trained with. Research "
            "checkpoints (scan-order and prototype ablations, not shipped) are listed when present in "
            "`weights/ablations/`. One image shows what an order changes on it, not whether the change holds: "
            "the table in docs/scan-order.md does that."
        )
        with gr.Row():
            chosen = gr.CheckboxGroup(
                list(offered),
                value=list(offered)[:2],
                label=f"Checkpoints (2 to {MAX_PANELS})",
                scale=4,
                elem_id="compare-choices",
            )
            run_btn = gr.Button("Compare on the analysed image", variant="primary", scale=1)
        bar = gr.HTML()
        columns, pictures, captions, scans = [], [], [], []
        with gr.Row():
            for i in range(MAX_PANELS):
                with gr.Column(visible=False, min_width=200) as column:
                    pictures.append(gr.Image(type="numpy", show_label=False, elem_id=f"compare-map-{i}"))
                    captions.append(gr.Markdown(elem_id=f"compare-caption-{i}"))
                    scans.append(gr.Plot(show_label=False))
                columns.append(column)

    @user_errors
    def run(analysis, labels):
        panels = compare(offered, analysis, list(labels or []))
        lo, hi = shared_range(panels)
        out = {bar: colour_bar(lo, hi, None)}
        for i in range(MAX_PANELS):
            shown = i < len(panels)
            out[columns[i]] = gr.update(visible=shown)
            if shown:
                p = panels[i]
                out[pictures[i]] = overlay(analysis.display, p.amap, lo, hi, OPACITY, None)
                out[captions[i]] = caption(p)
                out[scans[i]] = scan_thumbnail(p)
        return out

    net = dict(concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY)
    run_btn.click(run, [state, chosen], [bar, *columns, *pictures, *captions, *scans], **net, **PRIVATE)
