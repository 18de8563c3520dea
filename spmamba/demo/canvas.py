"""The Analyse tab's overlay, mixed in the browser.

The server sends the image once per analysis and the map's 256 levels once per re-scoring (two PNGs in hidden
image components); this script mixes them on a canvas exactly as ``visualize.compose`` does on the server, so the
opacity and outline sliders and the ground-truth box repaint without a request. tests/test_browser.py reads the
canvas back and compares it with the server's overlay pixel for pixel.
"""

from __future__ import annotations

import json

import numpy as np

from spmamba.visualize import MAP_OUTLINE, TRUTH_OUTLINE, colour_table

SOURCE_CLASS = ["overlay-source"]  # the hidden image components the canvases read
OVERLAY_HTML = (
    '<div class="overlay-caption">Anomaly map over the image (bright = unusual)</div>'
    '<canvas aria-label="anomaly map over the image"></canvas>'
)
BEFORE_AFTER_HTML = (
    '<div class="overlay-caption">Image ⟷ anomaly map: drag the divider</div>'
    '<canvas aria-label="image and anomaly map, side by side at the divider"></canvas>'
    '<input type="range" min="0" max="1000" value="500" aria-label="divider">'
)
OVERLAY_CSS = """
.overlay-source { display: none !important; }
#overlay-canvas canvas, #before-after canvas { width: 100%; height: auto; display: block; }
#before-after input[type=range] { width: 100%; }
.overlay-caption { font-size: 12px; color: var(--body-text-color-subdued); margin-bottom: 4px; }
"""


def _byte_triplet(colour: tuple[float, float, float]) -> list[int]:
    return [int(v) for v in np.floor(np.asarray(colour) * 255 + 0.5)]


# A page-side check that the Before / after canvas holds a painted picture (some pixel neither black nor white):
# the browser tests and bench/screenshots.py wait on it.
BEFORE_AFTER_PAINTED = (
    "(() => { const c = document.querySelector('#before-after canvas'); if (!c || !c.width) return false;"
    " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
    " return d.some((v, i) => i % 4 !== 3 && v !== 0 && v !== 255); })()"
)
OVERLAY_JS = """
<script>
(() => {
  const LUT = %s, OUTLINE = %s, TRUTH = %s;
  const CANVASES = '#overlay-canvas canvas, #before-after canvas';
  // the two sources' bytes, by URL: loaded here (the hidden components' own images may never load)
  const sources = new Map();
  const bytes = (sel) => {
    const shown = document.querySelector(sel + ' img');
    if (!shown || !shown.src) return null;
    let entry = sources.get(shown.src);
    if (!entry) {
      entry = {data: null};
      const img = new Image();
      img.onload = () => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d', {willReadFrequently: true});
        ctx.drawImage(img, 0, 0);
        entry.data = ctx.getImageData(0, 0, c.width, c.height);
        schedule();
      };
      img.src = shown.src;
      if (sources.size > 6) sources.delete(sources.keys().next().value);
      sources.set(shown.src, entry);
    }
    return entry.data;
  };
  const slider = (id) => {
    const r = document.querySelector('#' + id + ' input[type=range]');
    return r ? parseFloat(r.value) : null;
  };
  // visualize.compose: mix, outline the region at or above the level (4 neighbours), then the truth's edge
  const compose = (grey, levels, a, from, truth) => {
    const w = grey.width, h = grey.height, G = grey.data, L = levels.data;
    const out = new ImageData(w, h), O = out.data;
    for (let i = 0, p = 0; i < w * h; i++, p += 4) {
      const v = G[p], k = 3 * L[p];
      O[p] = Math.floor((1 - a) * v + a * LUT[k] + 0.5);
      O[p + 1] = Math.floor((1 - a) * v + a * LUT[k + 1] + 0.5);
      O[p + 2] = Math.floor((1 - a) * v + a * LUT[k + 2] + 0.5);
      O[p + 3] = 255;
    }
    const inside = (x, y) => L[4 * (y * w + x)] >= from;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      if (!inside(x, y)) continue;
      if ((x > 0 && !inside(x - 1, y)) || (x < w - 1 && !inside(x + 1, y)) ||
          (y > 0 && !inside(x, y - 1)) || (y < h - 1 && !inside(x, y + 1))) {
        const p = 4 * (y * w + x);
        O[p] = OUTLINE[0]; O[p + 1] = OUTLINE[1]; O[p + 2] = OUTLINE[2];
      }
    }
    if (truth) for (let i = 0, p = 0; i < w * h; i++, p += 4) {
      if (L[p + 1] > 127) { O[p] = TRUTH[0]; O[p + 1] = TRUTH[1]; O[p + 2] = TRUTH[2]; }
    }
    return out;
  };
  const mark = (c) => {  // the colour bar's outline mark follows the outline slider
    const bar = document.querySelector('.colour-bar');
    if (!bar) return;
    const lo = parseFloat(bar.dataset.lo), hi = parseFloat(bar.dataset.hi);
    const shown = c <= 1 && hi > lo;
    for (const el of bar.querySelectorAll('.outline-mark, .outline-label')) el.style.display = shown ? '' : 'none';
    const m = bar.querySelector('.outline-mark'), label = bar.querySelector('.outline-label');
    if (m) m.style.left = (100 * c).toFixed(1) + '%%';
    if (label) label.textContent = 'outline ≥ ' + Number((lo + c * (hi - lo)).toPrecision(3));
  };
  const draw = () => {
    if (!document.querySelector('#overlay-base img[src]')) {  // a new file cleared the image: show no stale map
      for (const c of document.querySelectorAll(CANVASES)) { c.width = 0; c.height = 0; }
      return;
    }
    const grey = bytes('#overlay-base'), levels = bytes('#overlay-layer');
    const canvas = document.querySelector('#overlay-canvas canvas');
    if (!grey || !levels || !canvas) return;  // still loading: the last paint stays until the new one
    if (grey.width !== levels.width || grey.height !== levels.height) return;  // one arrived before the other
    const a = slider('opacity'), c = slider('contour');
    const truth = !!(document.querySelector('#truth input') || {}).checked;
    const out = compose(grey, levels, a, Math.floor(c * 255 + 0.5), truth);
    canvas.width = out.width; canvas.height = out.height;
    canvas.getContext('2d').putImageData(out, 0, 0);
    canvas.dataset.frame = String((parseInt(canvas.dataset.frame || '0') + 1));
    mark(c);
    const split = document.querySelector('#before-after canvas');
    const divider = document.querySelector('#before-after input[type=range]');
    if (split && divider) {
      split.width = out.width; split.height = out.height;
      const ctx = split.getContext('2d');
      ctx.putImageData(out, 0, 0);
      const x = Math.round(out.width * parseFloat(divider.value) / 1000);
      if (x > 0) ctx.putImageData(grey, 0, 0, 0, 0, x, out.height);
      ctx.fillStyle = '#ffffff'; ctx.fillRect(Math.min(x, out.width - 1), 0, 1, out.height);
    }
  };
  // one paint per animation frame, after Gradio has passed the event to the slider's other box
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  };
  const mine = (el) => el && el.closest && el.closest('#opacity, #contour, #truth, #before-after');
  document.addEventListener('input', (e) => { if (mine(e.target)) schedule(); }, true);
  document.addEventListener('change', (e) => { if (mine(e.target)) schedule(); }, true);
  // a new image or map from the server (the sources' URLs change), or a canvas mounted by its tab's first showing
  const mounted = (c) => [...c.addedNodes].some(
    (n) => n.querySelector && (n.matches(CANVASES) || n.querySelector(CANVASES)));
  new MutationObserver((changes) => {
    if (changes.some((c) => (c.target.closest && c.target.closest('#overlay-base, #overlay-layer')) || mounted(c))) {
      schedule();
    }
  }).observe(document.documentElement, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  window.spmambaDrawOverlay = draw;
})();
</script>
""" % (
    json.dumps(colour_table().ravel().tolist()),
    json.dumps(_byte_triplet(MAP_OUTLINE)),
    json.dumps(_byte_triplet(TRUTH_OUTLINE)),
)
