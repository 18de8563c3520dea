"""The shape the documented file endpoints share (``/analyze``, ``/segment``): hidden components only."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from spmamba.imaging import ImageLoadError


def file_endpoint(fn: Callable, api_name: str, network: dict, files: bool = False) -> None:
    """Serve ``fn(path, checkpoint_label, index)`` -> (JSON, overlay image[, files]) as ``/api_name`` on
    components the page never shows, so the endpoint appears under "Use via API" without adding anything to the
    page. ``index`` (optional, from 0) is what the page's Frame/Slice slider chooses: a page, frame or NIfTI
    slice."""
    inputs = [
        gr.File(visible=False, type="filepath"),
        gr.Textbox("", visible=False),
        gr.Number(None, precision=0, visible=False, label="index"),
    ]
    outputs = [gr.JSON(visible=False), gr.Image(visible=False, type="numpy")]
    if files:
        outputs.append(gr.File(visible=False, file_count="multiple"))
    gr.Button(visible=False).click(fn, inputs, outputs, api_name=api_name, **network)


def api_index(index: float | None) -> int | None:
    """The endpoints' optional page/frame/slice number: a whole number from 0, or None for the file's default."""
    if index is None:
        return None
    if index != int(index) or index < 0:
        raise ImageLoadError(f"index must be a whole number from 0 (the first page, frame or slice), not {index:g}")
    return int(index)
