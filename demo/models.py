"""A small process-wide cache of predictors for the checkpoints the demo offers."""

from __future__ import annotations

import functools
import threading

from spmamba.inference import Predictor
from spmamba.seg.inference import Segmenter

_loading = threading.Lock()  # the launch warm-up and a first request must not load the same file twice


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Predictor:
    return Predictor(path)


def get_predictor(path: str) -> Predictor:
    """Load once per process; predictors are read-only at inference, so sessions can share them."""
    with _loading:
        return _load(path)


@functools.lru_cache(maxsize=4)
def _load_segmenter(path: str) -> Segmenter:
    return Segmenter.load(path)


def get_segmenter(path: str) -> Segmenter:
    """The same sharing for segmentation checkpoints."""
    with _loading:
        return _load_segmenter(path)
