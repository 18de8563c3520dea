"""The route every entry point takes: file → which checkpoint (and why) → prepared image → report.

The Analyse, Batch, Volume and Segment tabs, ``/analyze``, ``/analyze_volume``, ``/segment`` and ``spmamba
predict`` / ``spmamba seg predict`` all call this module; none of them chooses a checkpoint, a CT window or a
device itself, so one file gets one answer on every path.

Choice (:meth:`Pipeline.route`): every checkpoint stores what its training images look like
(:mod:`spmamba.domain`). An image goes to the checkpoint whose training images it lies nearest to, measured
against each checkpoint's own validation images; a DICOM Modality (or a NIfTI's MR/CT/PT) narrows the
candidates but does not override a clear mismatch; an image unlike every checkpoint's training images is
said to be so, and gets no normal-range verdict. A user's explicit choice is kept only while they ask for it
(``keep``), and a mismatch is then said.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, read_raw_metadata
from .domain import Domain, embed
from .imaging import (
    WINDOW_PRESETS,
    ImageLoadError,
    LoadedImage,
    image_suffix,
    is_dicom,
    load_image,
    near_blank_note,
)
from .inference import Predictor, default_device, image_modalities
from .seg.inference import Segmenter
from .volume import Volume, load_volume, volume_report, volume_scores
from .zoo import LABEL_SEP, MODALITY_NAMES, list_checkpoints, list_seg_checkpoints

ANOMALY, SEGMENT = "anomaly", "segment"
NONE_INSTALLED = (
    "No checkpoint is installed: set SPMAMBA_WEIGHTS to a folder of checkpoints (or SPMAMBA_HUB to a Hub model "
    "repository, owner/repo@revision) and restart."
)

_loading = threading.Lock()  # a warm-up and a first request must not load the same file twice


@functools.lru_cache(maxsize=8)
def _predictor(path: str) -> Predictor:
    return Predictor(path, device=default_device())


@functools.lru_cache(maxsize=8)
def _segmenter(path: str) -> Segmenter:
    return Segmenter.load(path, device=default_device())


def get_predictor(path: str) -> Predictor:
    """An anomaly checkpoint, loaded once per process on the one device choice; read-only, so shared."""
    with _loading:
        return _predictor(str(path))


def get_segmenter(path: str) -> Segmenter:
    """A segmentation checkpoint, loaded the same way."""
    with _loading:
        return _segmenter(str(path))


def load_checked(
    path: str | Path | None, window: tuple[float, float] | None = None, index: int | None = None, axis: int = 2
) -> LoadedImage:
    """The loader every path uses (``index``: a NIfTI slice, default the middle, or a frame/page, default the
    first), plus the refusal of blank images, which carry nothing to analyse."""
    if not path:
        raise ImageLoadError("no file was given")
    img = load_image(path, frame=index or 0, slice_index=index, axis=axis, window=window)
    if np.ptp(img.pixels) == 0:
        under = " under this window" if window else ""
        frames = int(img.meta.get("frames", 1))
        if frames > 1:
            unit = "frame" if img.meta.get("format") == "DICOM" else "page"
            raise ImageLoadError(
                f"{Path(path).name}: {unit} {int(img.meta.get('frame', 0)) + 1} of {frames} is blank{under}; "
                f"choose another {unit} (the Frame slider on the page, or index in /analyze and /segment, from 0)"
            )
        raise ImageLoadError(
            f"{Path(path).name} is blank{under}: every pixel has the same value, so there is nothing to analyse"
        )
    return img


def expand_inputs(names: list[str]) -> list[str]:
    """Files as given; a folder becomes the image files below it, recursively and in name order (an
    extension-less file counts when it is a DICOM by its preamble), so a whole export can be named at once."""
    out = []
    for name in names:
        path = Path(name)
        if not path.is_dir():
            out.append(name)
            continue
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            if image_suffix(f.name) or (not f.suffix and is_dicom(f)):
                out.append(str(f))
    return out


@dataclass(frozen=True)
class Entry:
    """One offered checkpoint, as routing needs it (read from its header and domain tensors only)."""

    label: str  # the dropdown label
    path: str
    dataset: str  # short name of its training data, e.g. "LGG FLAIR brain MRI"
    modalities: tuple[str, ...]
    domain: Domain | None
    window: str | None  # the CT window preset its training images were exported in

    @classmethod
    def read(cls, label: str, path: str) -> Entry:
        meta = read_raw_metadata(path)
        training = meta.get("training", {})
        window = training.get("dicom_window")
        return cls(
            label,
            str(path),
            str(training.get("dataset") or Path(path).stem).split(" (")[0],
            tuple(m.upper() for m in training.get("modalities") or ()),
            Domain.from_checkpoint(path, meta),
            window if window in WINDOW_PRESETS else None,
        )


@dataclass
class Route:
    """Which checkpoint an image goes to, and why."""

    label: str
    path: str
    in_domain: bool | None  # None: the checkpoint stores no domain
    domain_percentile: float | None  # among the checkpoint's validation images' distances, in %
    nearest: str | None  # the checkpoint whose training images the image lies nearest to
    looks_like: str  # the one line the page shows
    notes: list[str]

    def to_dict(self) -> dict:
        return {
            "in_domain": self.in_domain,
            "domain_percentile": self.domain_percentile,
            "nearest_checkpoint": Path(self.nearest).stem if self.nearest else None,
            "looks_like": self.looks_like,
        }


@dataclass
class Prepared:
    """A file made ready for its checkpoint: what every tab, endpoint and command starts from."""

    image: LoadedImage
    route: Route
    window: str | None  # the CT window preset applied because the checkpoint was trained in it


@dataclass
class PreparedVolume:
    """A volume made ready for its checkpoint, routed by its middle slice."""

    volume: Volume
    route: Route
    window: str | None

    @property
    def notes(self) -> list[str]:
        """The route's notes, then the loader's (skipped or blank slices, a series put in order)."""
        return list(self.route.notes) + self.volume.meta.get("notes", [])


@dataclass
class _Fit:
    entry: Entry
    distance: float
    ratio: float  # distance / the domain's limit: <= 1 is in domain
    percentile: float


class Pipeline:
    """The checkpoints on offer (anomaly and segmentation) and the route through them."""

    def __init__(self, checkpoints: dict[str, str] | None = None, seg_checkpoints: dict[str, str] | None = None):
        self.checkpoints = list_checkpoints() if checkpoints is None else dict(checkpoints)
        self.seg_checkpoints = list_seg_checkpoints() if seg_checkpoints is None else dict(seg_checkpoints)

    def offered(self, family: str) -> dict[str, str]:
        return self.checkpoints if family == ANOMALY else self.seg_checkpoints

    @functools.cached_property
    def _entries(self) -> dict[str, list[Entry]]:
        out = {}
        for family in (ANOMALY, SEGMENT):
            entries = []
            for label, path in self.offered(family).items():
                try:
                    entries.append(Entry.read(label, path))
                except CheckpointError:
                    continue
            out[family] = entries
        return out

    def entries(self, family: str) -> list[Entry]:
        return self._entries[family]

    def label_of(self, family: str, name: str | None) -> str | None:
        """The dropdown label for ``name``: a label, a path or a file stem; None for no name; an error for an
        unknown one, listing what is offered."""
        if not name:
            return None
        offered = self.offered(family)
        for label, path in offered.items():
            if name in (label, path, Path(path).stem, Path(path).name):
                return label
        if not offered:
            raise ImageLoadError(NONE_INSTALLED)
        names = ", ".join(label.split(LABEL_SEP)[0] for label in offered)
        raise ImageLoadError(f"Unknown checkpoint {name!r}; choose one of: {names}.")

    def fits(self, family: str, pixels: np.ndarray) -> list[_Fit]:
        """Every checkpoint of ``family`` that stores a domain, nearest first (ties keep the offered order,
        so of two checkpoints of one dataset the default comes first)."""
        entries = [e for e in self.entries(family) if e.domain is not None]
        if not entries:
            return []
        e = embed([pixels])
        fits = []
        for entry in entries:
            d = float(entry.domain.distance(e)[0])
            fits.append(_Fit(entry, d, d / entry.domain.limit, entry.domain.percentile(d)))
        return sorted(fits, key=lambda f: round(f.ratio, 6))

    def route(
        self,
        image: LoadedImage,
        family: str = ANOMALY,
        chosen: str | None = None,
        keep: bool = False,
        modality: str | None = None,
    ) -> Route:
        """The checkpoint of ``family`` for ``image``. ``chosen`` is the user's checkpoint, used only with
        ``keep``; ``modality`` stands in for a Modality the file does not carry (a dataset example's)."""
        offered = self.offered(family)
        if not offered:
            raise ImageLoadError(NONE_INSTALLED)
        chosen = self.label_of(family, chosen)
        meta = image.meta if not modality or "Modality" in image.meta else {**image.meta, "Modality": modality}
        wanted = image_modalities(meta)
        fits = self.fits(family, image.pixels)
        by_label = {f.entry.label: f for f in fits}
        if not fits:  # no checkpoint stores a domain: the modality rule alone
            return self._by_modality(wanted, chosen if keep else None, family)
        nearest = fits[0]
        notes = []
        if keep and chosen:
            pick = by_label.get(chosen)
            if pick is None:
                return Route(chosen, offered[chosen], None, None, nearest.entry.path, "", [])
            if nearest.ratio <= 1 and nearest.entry.dataset != pick.entry.dataset:  # (unlike all: looks_like says)
                notes.append(
                    f"Kept the checkpoint you chose ({pick.entry.dataset}), but this image looks like "
                    f"{nearest.entry.dataset}."
                )
        else:
            preferred = [f for f in fits if set(wanted) & set(f.entry.modalities)]
            if preferred and (preferred[0].ratio <= 1 or nearest.ratio > 1):
                pick = preferred[0]  # the modality's checkpoint fits, or nothing does
            else:
                pick = nearest
                if preferred:  # a clear mismatch: the content wins over the header
                    notes.append(
                        f"The file says {'/'.join(wanted)}, but it looks like {nearest.entry.dataset}; "
                        "it was routed by its content."
                    )
        if chosen and pick.entry.label != chosen and not keep:
            by = next((m for m in wanted if m in pick.entry.modalities), None)
            shown = f"{by}{f' ({MODALITY_NAMES[by]})' if by in MODALITY_NAMES else ''}" if by else pick.entry.dataset
            notes.append(f"Switched to a checkpoint trained on {shown} images.")
        inside = pick.ratio <= 1
        if inside:
            looks = f"Looks like: {pick.entry.dataset}, typical of the training images."
            if pick.percentile > 95:
                looks = f"Looks like: {pick.entry.dataset}, at the edge of the training images."
        else:
            consequence = "no normal-range verdict is given" if family == ANOMALY else "the outline may mean nothing"
            looks = f"Unlike any training set (nearest: {nearest.entry.dataset}); {consequence}."
        return Route(
            pick.entry.label,
            pick.entry.path,
            inside,
            round(pick.percentile, 1),
            nearest.entry.path,
            looks,
            notes,
        )

    def _by_modality(self, wanted: tuple[str, ...], chosen: str | None, family: str) -> Route:
        """The rule for checkpoints without a stored domain: the first trained on the image's modality."""
        offered = self.offered(family)
        label = chosen or next(iter(offered))
        notes = []
        if not chosen and wanted:
            for modality in wanted:
                hit = next((e for e in self.entries(family) if modality in e.modalities), None)
                if hit:
                    if hit.label != label:
                        name = f" ({MODALITY_NAMES[modality]})" if modality in MODALITY_NAMES else ""
                        notes.append(f"Switched to a checkpoint trained on {modality}{name} images.")
                    label = hit.label
                    break
        return Route(label, offered[label], None, None, None, "", notes)

    def prepare(
        self,
        path: str | Path | None,
        load=load_checked,
        family: str = ANOMALY,
        chosen: str | None = None,
        keep: bool = False,
        modality: str | None = None,
        window: tuple[float, float] | None = None,
        **load_options,
    ) -> Prepared:
        """Load the file (``load`` is the caller's loader, e.g. the demo's, which also refuses blank images),
        route it, and re-load a DICOM CT in the window its checkpoint was trained in when none was asked for."""
        if not path:
            raise ImageLoadError("no file was given")
        image = load(path, window=window, **load_options)
        route = self.route(image, family, chosen, keep, modality)
        route.notes += [n for n in [near_blank_note(image.pixels)] if n]
        applied = None
        if family == ANOMALY and window is None:
            applied = get_predictor(route.path).training_window(image.meta)
            if applied:
                image = load(path, window=WINDOW_PRESETS[applied], **load_options)
        return Prepared(image, route, applied)

    def prepare_volume(
        self, paths: list, chosen: str | None = None, keep: bool = False, axis: int = 2, volume_index: int = 0
    ) -> PreparedVolume:
        """Load a volume (NIfTI, multi-frame DICOM, DICOM series), route it by its middle slice, and re-load a
        DICOM CT in the window its checkpoint was trained in, as a single image would be."""
        volume = load_volume(paths, axis=axis, volume_index=volume_index)
        middle = LoadedImage(volume.slices[len(volume) // 2], volume.meta)
        route = self.route(middle, ANOMALY, chosen, keep)
        applied = get_predictor(route.path).training_window(volume.meta)
        if applied:
            volume = load_volume(paths, axis=axis, volume_index=volume_index, window=WINDOW_PRESETS[applied])
        return PreparedVolume(volume, route, applied)

    def analyse_volume(
        self, paths: list, chosen: str | None = None, keep: bool = False, axis: int = 2, volume_index: int = 0
    ) -> dict:
        """One volume's report, as ``/analyze_volume`` and ``spmamba predict --json VOLUME`` give it; the maps
        are dropped as each batch is scored (``volume_scores``)."""
        ready = self.prepare_volume(paths, chosen, keep, axis, volume_index)
        predictor = get_predictor(ready.route.path)
        return volume_result(predictor, volume_scores(predictor, ready.volume), ready)

    def analyse(self, path: str | Path, chosen: str | None = None, keep: bool = False, **options) -> dict:
        """One file's report, as ``/analyze`` and ``spmamba predict --json`` give it."""
        ready = self.prepare(path, chosen=chosen, keep=keep, **options)
        predictor = get_predictor(ready.route.path)
        scores = predictor.score(predictor.maps([ready.image.grey]))
        return report(predictor, scores, ready)


def volume_result(predictor: Predictor, scores, ready: PreparedVolume) -> dict:
    """The JSON report of a volume's slice ``scores``, with the route's facts and notes."""
    rep = volume_report(predictor, ready.volume, scores, in_domain=ready.route.in_domain)
    return {**rep, **ready.route.to_dict(), "notes": ready.notes}


def report(predictor: Predictor, scores, ready: Prepared, i: int = 0) -> dict:
    """The JSON report of image ``i`` of ``scores``, with the route's facts and notes."""
    out = predictor.report(scores, i, ready.image.meta, in_domain=ready.route.in_domain)
    return {**out, **ready.route.to_dict(), "notes": list(ready.route.notes)}
