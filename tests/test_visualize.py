"""The one overlay the Analyse and Volume tabs and ``spmamba predict --overlay`` draw."""

import numpy as np
from skimage.segmentation import find_boundaries

from spmamba.visualize import MAP_OUTLINE, overlay_own_range, own_range


def test_own_range_outlines_the_top_of_this_maps_range_and_keeps_the_image_elsewhere():
    rng = np.random.default_rng(0)
    grey = rng.uniform(0.2, 0.8, (48, 64)).astype(np.float32)
    amap = np.add.outer(np.linspace(0, 1, 48), np.linspace(0, 2, 64)).astype(np.float32) + 5.0  # lo 5, hi 8
    lo, hi, line = own_range(amap, 0.75)
    assert (lo, hi) == (5.0, 8.0) and line == 7.25

    picture = overlay_own_range(grey, amap, opacity=0.0, contour=0.75)
    green = np.all(np.abs(picture / 255.0 - MAP_OUTLINE) < 0.01, axis=-1)
    levels = np.floor((amap - 5.0) / 3.0 * 255 + 0.5)  # the map as drawn: 256 levels over its range
    expected = find_boundaries(levels >= np.floor(0.75 * 255 + 0.5), mode="inner")
    assert expected.sum() > 10 and np.array_equal(green, expected)
    shown = (grey * 255).astype(np.uint8)
    assert np.abs(picture[~green][:, 0].astype(int) - shown[~green]).max() <= 1  # opacity 0: the image itself

    # the colours span the map's own range: adding a constant to the map changes nothing drawn
    assert np.array_equal(overlay_own_range(grey, amap - 5.0), overlay_own_range(grey, amap))
