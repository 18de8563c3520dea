"""Pictures and figures: the heat-map overlay with its threshold contour, the score panel, the scan path."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from matplotlib import colormaps
from plotly.subplots import make_subplots
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from spmamba.scan import direction_names, scan_path


def overlay(grey: np.ndarray, amap: np.ndarray, vmin: float, vmax: float, opacity: float,
            threshold: float | None) -> np.ndarray:
    """RGB uint8: the grey image under the coloured anomaly map, with the map >= threshold outlined."""
    h, w = grey.shape
    m = resize(amap, (h, w), order=1, preserve_range=True, anti_aliasing=False)
    norm = np.clip((m - vmin) / max(vmax - vmin, 1e-8), 0, 1)
    heat = colormaps["inferno"](norm)[..., :3]
    rgb = (1 - opacity) * np.repeat(grey[..., None], 3, axis=2) + opacity * heat
    if threshold is not None:
        edge = find_boundaries(m >= threshold, mode="inner")
        rgb[edge] = (0.2, 1.0, 0.4)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def score_figure(parts: dict[str, float], total: float, threshold: float | None,
                 normal_scores: list[float] | None) -> go.Figure:
    """Weighted components and their sum; beside it, where this image falls among normal validation scores."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        subplot_titles=("score = peak + β·concentration + γ·contrast", "normal validation scores"))
    names = list(parts) + ["total"]
    values = list(parts.values()) + [total]
    fig.add_bar(x=names, y=values, marker_color=["#6c8ebf"] * len(parts) + ["#d6604d"], row=1, col=1,
                text=[f"{v:.3g}" for v in values], textposition="outside", showlegend=False)
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", line_color="#333", annotation_text="threshold", row=1, col=1)
    if normal_scores:
        fig.add_histogram(x=normal_scores, nbinsx=20, marker_color="#9ecae1", row=1, col=2, showlegend=False)
        fig.add_vline(x=total, line_color="#d6604d", line_width=3, annotation_text="this image", row=1, col=2)
        if threshold is not None:
            fig.add_vline(x=threshold, line_dash="dash", line_color="#333", row=1, col=2)
    fig.update_layout(height=340, margin=dict(l=30, r=10, t=40, b=30), template="plotly_white")
    return fig


def scan_figure(order: str, n: int, num_directions: int, direction: int, steps: int | None,
                background: np.ndarray | None = None) -> go.Figure:
    """The path the decoder reads an n x n map in; rings and Hilbert core in different colours."""
    names = direction_names(num_directions)
    path = scan_path(order, n, names[direction % len(names)])
    k = len(path) if steps is None else int(np.clip(steps, 1, len(path)))
    r, c = path[:k, 0], path[:k, 1]
    fig = go.Figure()
    if background is not None:
        fig.add_heatmap(z=resize(background, (n, n), anti_aliasing=True)[::-1], colorscale="gray", showscale=False,
                        x0=0, dx=1, y0=0, dy=1, hoverinfo="skip")
    ring = np.minimum.reduce([r, c, n - 1 - r, n - 1 - c]) < n // 4 if order == "circular_hilbert" else np.zeros(k, bool)
    core = ~ring
    core[:-1] |= core[1:]  # the core trace starts at the last ring point, so the step into the core is drawn
    for mask, name, colour in ((ring, "rings", "#e6550d"),
                               (core, "Hilbert core" if order == "circular_hilbert" else order, "#3182bd")):
        if mask.any():
            fig.add_scatter(x=np.where(mask, c, None), y=np.where(mask, n - 1 - r, None), mode="lines+markers",
                            name=name, line=dict(color=colour, width=2), marker=dict(size=4),
                            connectgaps=False)
    fig.add_scatter(x=[c[0]], y=[n - 1 - r[0]], mode="markers", name="start", marker=dict(size=12, color="#31a354"))
    fig.update_layout(height=460, template="plotly_white", margin=dict(l=10, r=10, t=30, b=10),
                      title=f"{order} on {n}×{n}, direction {names[direction % len(names)]}, step {k}/{len(path)}",
                      xaxis=dict(range=[-0.5, n - 0.5], showgrid=False, zeroline=False, constrain="domain"),
                      yaxis=dict(range=[-0.5, n - 0.5], scaleanchor="x", showgrid=False, zeroline=False))
    return fig
