"""One predictor behind the page, the API, the batch tab, ``spmamba evaluate`` and ``spmamba predict``.

:class:`Predictor` owns a loaded checkpoint: the device it runs on, how an image becomes model input,
the cacheable component maps, scoring with any weights, and placing a score against the
checkpoint's validation calibration in plain language. Everything that shows a verdict goes through
:meth:`Predictor.judge`, so the page, the API, the CSV and the command line say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint
from .data import Sample, load_batch, model_input
from .imaging import WINDOW_PRESETS
from .model import SPMamba
from .scoring import ComponentMaps, MapNorm, Scores, ScoreWeights, component_maps, rescore

WEAK_CALIBRATION = 30  # fewer normal images than this cannot place a 5% threshold: the verdict says so
NOT_DIAGNOSIS = "This measures how unusual the image is for the model, not whether disease is present."


def default_device() -> str:
    """CUDA when present (a GPU Space), else the CPU: the one place the device is chosen."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def image_modalities(meta: dict) -> tuple[str, ...]:
    """The modalities an image may be: its DICOM Modality, or MR/CT/PT for a NIfTI volume; () when unknown."""
    if meta.get("Modality"):
        return (str(meta["Modality"]).upper(),)
    return ("MR", "CT", "PT") if meta.get("format") == "NIfTI" else ()


@torch.no_grad()
def predict_maps(model: SPMamba, images: torch.Tensor) -> ComponentMaps:
    """(B, 1 or 3, S, S) images in [0, 1] -> component maps at S x S."""
    out = model(images)
    return component_maps(out.features, out.reconstructions, out.prototype_distance, model.config.image_size)


def maps_for_samples(
    model: SPMamba, samples: list[Sample], batch_size: int = 16, desc: str | None = None
) -> ComponentMaps:
    """Component maps for a list of samples, batched, with a progress bar when ``desc`` is given."""
    model.eval()
    parts = []
    device = next(model.parameters()).device
    for i in tqdm(range(0, len(samples), batch_size), desc=desc, disable=desc is None, unit="batch", leave=False):
        m = predict_maps(
            model, load_batch(samples[i : i + batch_size], model.config.image_size, model.config.intensity).to(device)
        )
        parts.append(ComponentMaps(m.per_scale.cpu(), m.prototype.cpu()))
    return ComponentMaps(torch.cat([p.per_scale for p in parts]), torch.cat([p.prototype for p in parts]))


def load_map_norm(path: Path, meta: dict) -> MapNorm | None:
    """The training normals' map statistics, when the checkpoint scores standardised maps with them."""
    if not (meta.get("map_norm") or {}).get("in_use"):
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return MapNorm.from_tensors({k: f.get_tensor(k) for k in f.keys() if k.startswith("map_norm.")})


def score_components(scores: Scores, i: int = 0) -> dict[str, float]:
    """The score of image ``i`` and its four components (plus the map's peak) as plain floats."""
    return {
        "total": float(scores.total[i]),
        "reconstruction": float(scores.reconstruction[i]),
        "prototype": float(scores.prototype[i]),
        "peak": float(scores.peak[i]),
        "concentration": float(scores.concentration[i]),
        "contrast": float(scores.contrast[i]),
    }


@dataclass
class Judgement:
    """Where one score stands for this checkpoint. ``above`` is None when the score cannot be placed:
    no calibration, or an image of a modality the checkpoint was not trained on."""

    total: float
    above: bool | None
    percentile: float | None  # share of normal validation images scoring lower, in %
    modality_match: bool | None  # None: the image's modality is unknown (e.g. a PNG)
    headline: str  # one phrase, also the batch CSV's verdict column
    text: str  # the full sentence the page shows

    def to_dict(self) -> dict:
        return {
            "above_threshold": self.above,
            "percentile_among_normal": self.percentile,
            "modality_match": self.modality_match,
            "verdict": self.headline,
            "note": self.text,
        }


def _misses(cal: dict) -> str:
    """What a score under the threshold does not rule out: the share of abnormal images the threshold passed where
    it was measured (another acquisition group where the checkpoint has one), so a low sensitivity is said plainly
    on the verdict that depends on it."""
    for split, where in (("shift", "from another acquisition group"), ("val", "of the validation split")):
        tpr, ci = cal.get(f"{split}_true_positive_rate"), cal.get(f"{split}_true_positive_rate_ci95")
        if tpr is not None and ci:
            return (
                f" The threshold passes {100 * (1 - tpr):.0f}% ({100 * (1 - ci[1]):.0f}–{100 * (1 - ci[0]):.0f}%) of "
                f"the abnormal images {where}: a score in the normal range does not rule a finding out."
            )
    return ""


class Predictor:
    """A checkpoint ready to score images; read-only after loading, so sessions can share one."""

    def __init__(self, checkpoint: str | Path, device: str | None = None, encoder_weights: str = "imagenet"):
        self.path = Path(checkpoint)
        self.device = device or default_device()
        self.model, self.meta = load_checkpoint(self.path, device=self.device, encoder_weights=encoder_weights)
        self.weights = ScoreWeights.from_dict(self.meta["score_weights"])
        self.calibration: dict | None = self.meta.get("calibration")
        self.map_norm = load_map_norm(self.path, self.meta)
        self.modalities = tuple(m.upper() for m in self.meta.get("training", {}).get("modalities") or ())

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def training_window(self, image_meta: dict) -> str | None:
        """The CT window preset this checkpoint's training images were exported in, for a DICOM CT image
        (other images, and checkpoints whose card names none, keep the file's own window)."""
        name = self.meta.get("training", {}).get("dicom_window")
        ct = image_meta.get("format") == "DICOM" and str(image_meta.get("Modality", "")).upper() == "CT"
        return name if ct and name in WINDOW_PRESETS else None

    def maps(self, greys: list[np.ndarray]) -> ComponentMaps:
        """Component maps (on the CPU) of (H, W) grey images in [0, 1], in one network call; standardised
        against the training normals where the checkpoint scores that way (:class:`MapNorm`)."""
        x = torch.stack([model_input(g, self.image_size, self.model.config.intensity) for g in greys]).to(self.device)
        m = predict_maps(self.model, x)
        return self._scored(ComponentMaps(m.per_scale.cpu(), m.prototype.cpu()))

    def maps_for_samples(self, samples: list[Sample], batch_size: int = 16, desc: str | None = None) -> ComponentMaps:
        return self._scored(maps_for_samples(self.model, samples, batch_size, desc))

    def _scored(self, maps: ComponentMaps) -> ComponentMaps:
        return self.map_norm.apply(maps) if self.map_norm is not None else maps

    def score(self, maps: ComponentMaps, weights: ScoreWeights | None = None) -> Scores:
        """Scores from cached maps with ``weights`` (default: the checkpoint's own); no network."""
        return rescore(maps, weights or self.weights)

    def trained_on(self, image_meta: dict) -> bool | None:
        """Whether the checkpoint was trained on this image's modality; None when either is unknown."""
        wanted = image_modalities(image_meta)
        if not wanted or not self.modalities:
            return None
        return bool(set(wanted) & set(self.modalities))

    def report(self, scores: Scores, i: int, image_meta: dict, in_domain: bool | None = None) -> dict:
        """Image ``i`` of ``scores`` as the API and ``spmamba predict --json`` give it."""
        total = float(scores.total[i])
        return {
            "checkpoint": self.name,
            "scores": score_components(scores, i),
            "threshold": (self.calibration or {}).get("threshold"),
            **self.judge(total, image_meta, in_domain).to_dict(),
            "score_weights": self.weights.to_dict(),
            "image": image_meta,
        }

    def judge(self, total: float, image_meta: dict | None = None, in_domain: bool | None = None) -> Judgement:
        """Plain-language placement of a score against the validation calibration; never a diagnosis. An image
        unlike the training images (``in_domain`` False, from :mod:`spmamba.pipeline`) gets no placement."""
        match = self.trained_on(image_meta or {})
        cal = self.calibration
        if not np.isfinite(total):  # never let a failed computation read as "within the normal range"
            return Judgement(
                total,
                None,
                None,
                match,
                "could not be scored",
                "**This image could not be scored** (the computation gave no finite number). No verdict is given.",
            )
        if match is False:
            shown = "/".join(image_modalities(image_meta or {}))
            trained = "/".join(self.modalities)
            headline = f"cannot judge: model trained on {trained}, image is {shown}"
            text = (
                f"**This model cannot judge this kind of image.** It was trained on {trained} images and this "
                f"is a {shown} image, so its score ({total:.3g}) is not placed against a normal range."
            )
            return Judgement(total, None, None, match, headline, text)
        if in_domain is False:
            text = (
                f"**This image is unlike the images this model was trained on.** Score {total:.3g} is not placed "
                "against a normal range: the model cannot judge this image."
            )
            return Judgement(total, None, None, match, "unlike the training images", text)
        if not cal:
            return Judgement(
                total,
                None,
                None,
                match,
                "no calibration",
                f"Score {total:.3g}. This checkpoint has no calibration, so the score cannot be placed.",
            )
        normal = np.asarray(cal["normal_scores"])
        above, pct = bool(total >= cal["threshold"]), float(100 * (normal < total).mean())
        headline = "above the normal range" if above else "within the normal range"
        rate, ci = cal.get("val_false_positive_rate"), cal.get("val_false_positive_rate_ci95")
        flags = ""
        if rate is not None:
            interval = f" ({100 * ci[0]:.0f}–{100 * ci[1]:.0f}%)" if ci else ""
            flags = f", which {100 * rate:.1f}%{interval} of the normal validation images also reach"
        shift, shift_ci = cal.get("shift_false_positive_rate"), cal.get("shift_false_positive_rate_ci95")
        if shift is not None:
            flags += (
                f", as do {100 * shift:.1f}% ({100 * shift_ci[0]:.0f}–{100 * shift_ci[1]:.0f}%) of normal images "
                "from another acquisition group"
            )
        population = (
            "training normals, each scored by a model that did not train on it"
            if cal.get("out_of_fold")
            else "normal validation images"
        )
        weak = (
            f" This threshold rests on only {len(normal)} normal images: read it as weak."
            if len(normal) < WEAK_CALIBRATION
            else ""
        )
        if pct == 0:
            rank = f"lower than all {len(normal)} {population}"
        elif pct == 100:
            rank = f"higher than all {len(normal)} {population}"
        else:
            rank = f"higher than {pct:.0f}% of the {len(normal)} {population}"
        text = (
            f"**{headline.capitalize()} for this model.** Score {total:.3g} (threshold {cal['threshold']:.3g}"
            f"{flags}); {rank}.{weak}{'' if above else _misses(cal)} {NOT_DIAGNOSIS}"
        )
        return Judgement(total, above, pct, match, headline, text)
