"""The shape the documented file endpoints share (``/analyze``, ``/segment``): hidden components only."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr


def file_endpoint(fn: Callable, api_name: str, network: dict) -> None:
    """Serve ``fn(path, checkpoint_label)`` -> (JSON, overlay image) as ``/api_name`` on components the
    page never shows, so the endpoint appears under "Use via API" without adding anything to the page."""
    inputs = [gr.File(visible=False, type="filepath"), gr.Textbox("", visible=False)]
    outputs = [gr.JSON(visible=False), gr.Image(visible=False, type="numpy")]
    gr.Button(visible=False).click(fn, inputs, outputs, api_name=api_name, **network)
