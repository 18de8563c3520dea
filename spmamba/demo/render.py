"""Pictures and figures: the heat-map overlay with its threshold contour, the score panel, the scan path."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib import colormaps
from plotly.subplots import make_subplots
from skimage.transform import resize

from spmamba.scan import direction_names, scan_path
from spmamba.visualize import CMAP as _CMAP

_TEMPLATE = pio.templates["plotly_white"]
_GRADIENT = ", ".join(
    "#%02x%02x%02x" % tuple(int(255 * v) for v in colormaps[_CMAP](t)[:3]) for t in np.linspace(0, 1, 9)
)


def colour_bar(vmin: float, vmax: float, outline: float | None) -> str:
    """HTML colour bar for the overlay: the map's range, and where the outline is drawn (``outline`` in map
    units). The Analyse tab's script moves the mark with the outline slider, reading the range from the bar."""
    pos = 100 * (outline - vmin) / (vmax - vmin) if outline is not None and vmax > vmin else None
    hidden = "" if pos is not None and pos <= 100 else "display:none;"
    mark = (
        f'<div class="outline-mark" style="{hidden}position:absolute;left:{pos or 0:.1f}%;top:-3px;height:20px;'
        'border-left:2px solid #33ff66"></div>'
    )
    label = f"outline ≥ {outline:.3g}" if outline is not None else ""
    return (
        f'<div class="colour-bar" data-lo="{vmin!r}" data-hi="{vmax!r}" style="font-size:12px;line-height:1.3">'
        "anomaly map (colour scale of the overlay)"
        f'<div style="position:relative;height:14px;margin:4px 0;border-radius:3px;'
        f'background:linear-gradient(to right, {_GRADIENT})">{mark}</div>'
        f'<div style="display:flex;justify-content:space-between"><span>{vmin:.3g} (usual)</span>'
        f'<span class="outline-label" style="{hidden}color:#1a9641">{label}</span>'
        f"<span>{vmax:.3g} (most unusual)</span></div></div>"
    )


def components_table(scores: dict, weights) -> str:
    """The four components with their weights, and how they make the score (Markdown)."""
    return (
        "| component | value | weight | enters the score as |\n|---|---|---|---|\n"
        f"| reconstruction (max after Gaussian smoothing σ={weights.sigma:g}) | {scores['reconstruction']:.4g} | 1 | "
        "the map = reconstruction + α·prototype |\n"
        f"| prototype distance (max) | {scores['prototype']:.4g} | α = {weights.alpha:g} | "
        f"its peak = {scores['peak']:.4g} |\n"
        f"| concentration | {scores['concentration']:.4g} | β = {weights.beta:g} | "
        f"{weights.beta * scores['concentration']:+.4g} |\n"
        f"| contrast (DoG σ {weights.dog_sigma:g} / {weights.dog_k_sigma:g}) | {scores['contrast']:.4g} | "
        f"γ = {weights.gamma:g} | "
        f"{weights.gamma * scores['contrast']:+.4g} |\n"
        f"| **score** | | | **{scores['total']:.4g}** |"
    )


def maps_figure(per_scale: np.ndarray, prototype: np.ndarray, standardised: bool = False) -> go.Figure:
    """The cached component maps side by side: the three reconstruction scales and the prototype distance; the
    title says whether they are raw or standardised against the training normals (the checkpoint's setting)."""
    levels = ["fine", "middle", "coarse"] if len(per_scale) == 3 else [str(i + 1) for i in range(len(per_scale))]
    titles = [f"{name} features" for name in levels] + ["prototype distance"]
    fig = make_subplots(1, len(titles), subplot_titles=titles, horizontal_spacing=0.04)
    for i, m in enumerate(list(per_scale) + [prototype]):
        fig.add_heatmap(
            z=m[::-1],
            colorscale=_CMAP,
            row=1,
            col=i + 1,
            showscale=False,
            hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>",
        )
        fig.update_xaxes(visible=False, row=1, col=i + 1)
        fig.update_yaxes(visible=False, scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=300,
        template="plotly_white",
        margin=dict(l=5, r=5, t=60, b=5),
        title=dict(
            text=(
                "standardised maps: deviation from the training normals at each position (in their spreads)"
                if standardised
                else "raw maps: reconstruction error (1 − cos) per feature level, and prototype distance"
            ),
            font_size=13,
        ),
    )
    return fig


def score_figure(
    parts: dict[str, float], total: float, threshold: float | None, normal_scores: list[float] | None
) -> go.Figure:
    """Weighted components and their sum; beside it, where this image falls among normal validation scores.

    Built as a plain dict without plotly's validation: it is redrawn on every slider event, and
    validating subplots and shapes costs most of the 50 ms budget.
    """
    names = list(parts) + ["total"]
    values = list(parts.values()) + [total]
    data = [
        {
            "type": "bar",
            "x": names,
            "y": values,
            "xaxis": "x",
            "yaxis": "y",
            "showlegend": False,
            "marker": {"color": ["#6c8ebf"] * len(parts) + ["#d6604d"]},
            "text": [f"{v:.3g}" for v in values],
            "textposition": "outside",
        }
    ]
    shapes, notes = [], []
    if threshold is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "x domain",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": threshold,
                "y1": threshold,
                "line": {"dash": "dash", "color": "#333"},
            }
        )
        notes.append(
            {
                "xref": "x domain",
                "yref": "y",
                "x": 1,
                "y": threshold,
                "text": "threshold",
                "showarrow": False,
                "yanchor": "bottom",
                "xanchor": "right",
            }
        )
    if normal_scores:
        data.append(
            {
                "type": "histogram",
                "x": normal_scores,
                "nbinsx": 20,
                "xaxis": "x2",
                "yaxis": "y2",
                "marker": {"color": "#9ecae1"},
                "showlegend": False,
            }
        )
        for x, style in ((total, {"color": "#d6604d", "width": 3}), (threshold, {"dash": "dash", "color": "#333"})):
            if x is not None:
                shapes.append(
                    {
                        "type": "line",
                        "xref": "x2",
                        "yref": "y2 domain",
                        "x0": x,
                        "x1": x,
                        "y0": 0,
                        "y1": 1,
                        "line": style,
                    }
                )
        notes.append(
            {
                "xref": "x2",
                "yref": "y2 domain",
                "x": total,
                "y": 1,
                "text": "this image",
                "showarrow": False,
                "yanchor": "bottom",
            }
        )
    layout = {
        "height": 340,
        "margin": {"l": 30, "r": 10, "t": 40, "b": 30},
        "template": _TEMPLATE,
        "xaxis": {"domain": [0, 0.53]},
        "yaxis": {"anchor": "x"},
        "xaxis2": {"domain": [0.6, 1], "anchor": "y2"},
        "yaxis2": {"anchor": "x2"},
        "shapes": shapes,
        "annotations": notes
        + [
            {
                "text": "score = peak + β·concentration + γ·contrast",
                "xref": "x domain",
                "yref": "paper",
                "x": 0.5,
                "y": 1.08,
                "showarrow": False,
            },
        ]
        + (  # the histogram's title only where there is one (no calibration, or a modality it does not judge)
            [
                {
                    "text": "normal validation scores",
                    "xref": "x2 domain",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 1.08,
                    "showarrow": False,
                }
            ]
            if normal_scores
            else []
        ),
    }
    return go.Figure({"data": data, "layout": layout}, skip_invalid=False, _validate=False)


WALK_FRAMES = 32  # the "walk the path" animation shows the sequence in this many steps


def walk_step(steps: int, n: int) -> tuple[int, bool]:
    """The next frame of the walk along an n x n path: (steps shown, finished)."""
    total = n * n
    nxt = min(total, int(steps) + -(-total // WALK_FRAMES))
    return nxt, nxt >= total


def _scan_traces(r: np.ndarray, c: np.ndarray, n: int, ring: np.ndarray, k: int, core_name: str) -> list[dict]:
    """Rings, core, start and current-step traces for the first ``k`` steps (None breaks the lines)."""
    r, c, ring = r[:k], c[:k], ring[:k]
    core = ~ring
    core[:-1] |= core[1:]  # the core trace starts at the last ring point, so the step into the core is drawn
    out = []
    for mask, name, colour in ((ring, "rings", "#e6550d"), (core, core_name, "#3182bd")):
        out.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "connectgaps": False,
                "x": np.where(mask, c, None).tolist(),
                "y": np.where(mask, n - 1 - r, None).tolist(),
                "line": {"color": colour, "width": 2},
                "marker": {"size": 4},
            }
        )
    out.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": "start",
            "x": [int(c[0])],
            "y": [int(n - 1 - r[0])],
            "marker": {"size": 12, "color": "#31a354"},
        }
    )
    out.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": f"step {k}",
            "x": [int(c[-1])],
            "y": [int(n - 1 - r[-1])],
            "marker": {"size": 12, "color": "#222", "symbol": "x"},
        }
    )
    return out


GREY = [[0.0, "#000000"], [1.0, "#ffffff"]]  # spelt out: the figures skip validation, and plotly.js has no "gray"


def scan_figure(
    order: str, n: int, num_directions: int, direction: int, steps: int | None, background: np.ndarray | None = None
) -> go.Figure:
    """The path the decoder reads an n x n map in; rings and Hilbert core in different colours.

    ``steps`` cuts the path: the step slider, or the walk animation driven by a timer in the app.
    """
    names = direction_names(num_directions)
    name = names[direction % len(names)]
    path = scan_path(order, n, name)
    k = len(path) if steps is None else int(np.clip(steps, 1, len(path)))
    r, c = path[:, 0], path[:, 1]
    ch = order == "circular_hilbert"
    ring = np.minimum.reduce([r, c, n - 1 - r, n - 1 - c]) < n // 4 if ch else np.zeros(len(path), bool)
    core_name = "Hilbert core" if ch else order
    data = []
    if background is not None:
        data.append(
            {
                "type": "heatmap",
                "z": resize(background, (n, n), anti_aliasing=True)[::-1].tolist(),
                "colorscale": GREY,
                "showscale": False,
                "x0": 0,
                "dx": 1,
                "y0": 0,
                "dy": 1,
                "hoverinfo": "skip",
            }
        )
    data += _scan_traces(r, c, n, ring, k, core_name)
    layout = {
        "height": 520,
        "template": _TEMPLATE,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "title": {"text": f"{order} on {n}×{n}, direction {name}, step {k}/{len(path)}"},
        "xaxis": {"range": [-0.5, n - 0.5], "showgrid": False, "zeroline": False, "constrain": "domain"},
        "yaxis": {"range": [-0.5, n - 0.5], "scaleanchor": "x", "showgrid": False, "zeroline": False},
    }
    return go.Figure({"data": data, "layout": layout}, skip_invalid=False, _validate=False)
