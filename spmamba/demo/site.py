"""What every tab shares: the checkpoints and the route through them (:class:`Site`, over
:mod:`spmamba.pipeline`), the one error wrapper, and the facts of the page (banner, safe metadata, concurrency)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from spmamba import imaging
from spmamba.checkpoint import CheckpointError
from spmamba.imaging import ImageLoadError
from spmamba.inference import default_device
from spmamba.pipeline import ANOMALY, NONE_INSTALLED, Pipeline, Route
from spmamba.scoring import ScoreWeights

from . import handlers, uploads
from .examples import Example, file_digest

BANNER = (
    "**Research use only — not for diagnosis.** Scores say how unusual an image is for a model trained on "
    "normal images of one dataset; they are not a clinical finding."
)
SAFE_META = (
    "format",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "PhotometricInterpretation",
    "frames",
    "window",
    "shape",
    "size",
)
NETWORK_CONCURRENCY = 2 if default_device() == "cuda" else 1  # one CPU forward already uses every core
PRIVATE = dict(api_visibility="private")
log = logging.getLogger("spmamba.demo")


def user_errors(fn):
    """Every failure reaches the user as one clear sentence and the server keeps serving.

    Unforeseen errors are logged by type and code location only: their messages may quote file
    names or header values, which can identify a patient.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as err:
            err.print_exception = False  # Gradio would print the message, and with it any file name, to the log
            raise
        except (ImageLoadError, CheckpointError) as err:
            raise gr.Error(uploads.in_own_words(str(err)), print_exception=False) from None
        except Exception as err:
            where = traceback.extract_tb(err.__traceback__)[-1]
            log.error("%s in %s:%d (%s)", type(err).__name__, Path(where.filename).name, where.lineno, where.name)
            raise gr.Error(
                "Something went wrong while processing this request. "
                "The app is still running: try again or with another file.",
                print_exception=False,
            ) from None

    return wrapper


def image_info(meta: dict) -> str:
    """Acquisition facts only; the loader never passes identifiers, and this shows a fixed whitelist."""
    parts = [f"{k}: {meta[k]}" for k in SAFE_META if k in meta]
    return "Image — " + " · ".join(parts) if parts else ""


@dataclass
class Site:
    """What every tab needs to know: the checkpoints on offer, the route through them and the examples."""

    checkpoints: dict[str, str]  # dropdown label -> path
    examples: list[Example]
    seg_checkpoints: dict[str, str] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.checkpoints, self.seg_checkpoints)

    @property
    def labels(self) -> list[str]:
        return list(self.checkpoints)

    @property
    def default(self) -> str | None:
        return self.labels[0] if self.checkpoints else None

    def path(self, label: str) -> str:
        """The checkpoint file of a dropdown label (or a stem or path), with the pipeline's own refusal."""
        try:
            found = self.pipeline.label_of(ANOMALY, label)
        except ImageLoadError as err:
            raise gr.Error(str(err), print_exception=False) from None
        if found is None:
            raise gr.Error(
                NONE_INSTALLED if not self.checkpoints else "Choose a checkpoint first.", print_exception=False
            )
        return self.checkpoints[found]

    @functools.cached_property
    def _known(self) -> dict[str, Example]:
        return {file_digest(e.path): e for e in self.examples if e.truth or e.modality}

    def example(self, path: str | None) -> Example | None:
        """The dataset example this file is (Gradio serves a copy, so it is recognised by its bytes)."""
        if not path or not self._known:
            return None
        try:
            return self._known.get(file_digest(path))
        except OSError:
            return None

    def prepare(self, path: str | None, options: handlers.ImageOptions, label: str | None = None, keep: bool = False):
        """The pipeline's route for this file (``label`` is used only with ``keep``; a dataset example's
        modality counts as a DICOM's would), loaded with the page's loader, and the example's mask if any."""
        if label and label not in self.checkpoints:
            self.path(label)  # the page's own error for an unknown label
        example = self.example(path)
        ready = self.pipeline.prepare(
            path,
            functools.partial(handlers.load, options=options),
            chosen=label,
            keep=keep,
            modality=example.modality if example else None,
            window=options.window,
        )
        return Prepared(ready.image, ready.route, ready.window, example.truth if example else None)


class Prepared(NamedTuple):
    """A file made ready for a checkpoint: what the page, the API and their tests start from."""

    image: imaging.LoadedImage
    route: Route  # the checkpoint, whether the image is like its training images, and notes
    window: str | None  # the CT window preset applied because the checkpoint was trained in it
    truth: Path | None  # the ground-truth mask of a dataset example

    @property
    def label(self) -> str:
        return self.route.label


# The weight sliders of the Analyse and Volume tabs: range, step and label; the value is ScoreWeights' own.
WEIGHT_SLIDERS = {
    "alpha": (0, 2, 0.05, "α prototype"),
    "beta": (-0.2, 0.2, 0.005, "β concentration"),
    "gamma": (0, 5000, 10, "γ contrast"),
    "dog_sigma": (0.3, 3, 0.1, "Contrast: difference-of-Gaussians low σ"),
    "dog_k_sigma": (0.6, 6, 0.1, "Contrast: difference-of-Gaussians high σ"),
}
DEFAULT_WINDOW = imaging.WINDOW_PRESETS["soft tissue"]  # the centre/width sliders before a DICOM sets them


def weight_slider(name: str, **options) -> gr.Slider:
    """One score-weight slider at the default weights (the paper's), so the page and the library agree."""
    lo, hi, step, label = WEIGHT_SLIDERS[name]
    return gr.Slider(lo, hi, getattr(ScoreWeights(), name), step=step, label=label, **options)
