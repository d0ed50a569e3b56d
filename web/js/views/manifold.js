// Manifold: the latent plane decoded as a grid, the encoded test set over it, and prior samples.
import { get, post, guarded } from '../api.js';
import { decodeImages, paint, fillDimSelect, fmt, svg, el, classColor, sub } from '../draw.js';
import { state } from '../state.js';

const SIZE = 560;

function initManifold() {
  const info = state.info;
  const d = info.latent;
  const gridCanvas = document.getElementById('plane-grid');
  const scatterCanvas = document.getElementById('plane-scatter');
  const overlay = document.getElementById('plane-overlay');
  const planeEl = document.getElementById('plane');
  const kind = document.getElementById('plane-kind');
  const axisI = document.getElementById('plane-axis-i');
  const axisJ = document.getElementById('plane-axis-j');
  const originKind = document.getElementById('plane-origin');
  const originIndex = document.getElementById('plane-origin-index');
  const gridN = document.getElementById('plane-n');
  const extentSel = document.getElementById('plane-extent');
  const dots = document.getElementById('plane-dots');
  const preview = document.getElementById('plane-preview');
  const previewText = document.getElementById('plane-preview-text');
  fillDimSelect(axisI, d, 0);
  fillDimSelect(axisJ, d, 1);
  originIndex.max = String(info.test_size - 1);

  let plane = null; // {origin: [d], a: [d], b: [d]}
  let scatter = null; // {labels, mu}
  let samples = []; // z of the last prior samples
  let cursor = null; // [u, v]
  let gridRequest = 0; // only the newest grid request may paint: replies can arrive out of order
  let hoverBusy = false;
  let hoverNext = null;

  const extent = () => Number(extentSel.value);
  const toPx = (u) => ((u + extent()) / (2 * extent())) * SIZE;
  const toPy = (v) => ((extent() - v) / (2 * extent())) * SIZE;
  const dot = (x, y) => x.reduce((s, xi, k) => s + xi * y[k], 0);
  const project = (z) => {
    const r = z.map((zi, k) => zi - plane.origin[k]);
    return [dot(r, plane.a), dot(r, plane.b)];
  };
  const lift = (u, v) => plane.origin.map((o, k) => o + u * plane.a[k] + v * plane.b[k]);

  async function buildPlane() {
    let origin = new Array(d).fill(0);
    if (originKind.value === 'item') {
      const e = await guarded(() => post('/api/encode', { index: Number(originIndex.value) }));
      if (!e) return false;
      origin = e.mu;
    }
    let a, b, caption;
    if (kind.value === 'pca') {
      [a, b] = info.pca.axes;
      const [ea, eb] = info.pca.explained;
      caption = `Plane of the two principal directions of the encoded test means (${fmt(100 * ea, 0)}% and ${fmt(100 * eb, 0)}% of their variance)`;
    } else {
      const i = Number(axisI.value), j = Number(axisJ.value);
      if (i === j) {
        await guarded(() => Promise.reject(new Error('choose two different axes')));
        return false;
      }
      a = new Array(d).fill(0);
      b = new Array(d).fill(0);
      a[i] = 1;
      b[j] = 1;
      caption = `Plane of z${sub(i)} (across) and z${sub(j)} (up)`;
    }
    caption += originKind.value === 'zero' ? '; the other coordinates at 0.' : `; the other coordinates at the code of test image ${originIndex.value}.`;
    plane = { origin, a, b };
    document.getElementById('plane-caption').textContent = caption;
    return true;
  }

  async function drawGrid() {
    const n = Number(gridN.value);
    const step = (2 * extent()) / n;
    const z = [];
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) z.push(lift(-extent() + (c + 0.5) * step, extent() - (r + 0.5) * step));
    const request = ++gridRequest;
    const reply = await guarded(() => post('/api/decode', { z }));
    if (!reply || request !== gridRequest) return;
    const ctx = gridCanvas.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, SIZE, SIZE);
    const cell = SIZE / n;
    decodeImages(reply.images).forEach((image, k) => paint(gridCanvas, image, (k % n) * cell, Math.floor(k / n) * cell, cell, cell));
    gridCanvas.dataset.cells = String(n * n);
  }

  function drawScatter() {
    const ctx = scatterCanvas.getContext('2d');
    ctx.clearRect(0, 0, SIZE, SIZE);
    if (!dots.checked || !scatter) return;
    scatter.mu.forEach((mu, k) => {
      const [u, v] = project(mu);
      ctx.beginPath();
      ctx.arc(toPx(u), toPy(v), 2.2, 0, 2 * Math.PI);
      ctx.fillStyle = scatter.labels ? classColor(scatter.labels[k]) : '#4e79a7';
      ctx.globalAlpha = 0.6;
      ctx.fill();
    });
    ctx.globalAlpha = 1;
  }

  function drawOverlay() {
    overlay.replaceChildren();
    samples.forEach((z, k) => {
      const [u, v] = project(z);
      const g = svg('g', { class: 'prior-sample', transform: `translate(${toPx(u)},${toPy(v)})` }, overlay);
      svg('circle', { r: 9 }, g);
      svg('text', {}, g).textContent = String(k + 1);
    });
    if (cursor) {
      const g = svg('g', { class: 'cursor' }, overlay);
      const x = toPx(cursor[0]), y = toPy(cursor[1]);
      svg('line', { x1: x - 8, x2: x + 8, y1: y, y2: y }, g);
      svg('line', { x1: x, x2: x, y1: y - 8, y2: y + 8 }, g);
    }
  }

  async function redraw() {
    if (!(await buildPlane())) return;
    drawScatter();
    drawOverlay();
    await drawGrid();
  }

  // Decodes the point under the cursor; while one request is out, only the latest point waits.
  async function hover(u, v) {
    cursor = [u, v];
    drawOverlay();
    if (hoverBusy) {
      hoverNext = [u, v];
      return;
    }
    hoverBusy = true;
    const z = lift(u, v);
    const reply = await guarded(() => post('/api/decode', { z: [z] }));
    if (reply) {
      paint(preview, decodeImages(reply.images)[0]);
      previewText.textContent = `plane (${fmt(u)}, ${fmt(v)})\nz = [${z.map((x) => fmt(x, 2)).join(', ')}]`;
    }
    hoverBusy = false;
    if (hoverNext) {
      const [nu, nv] = hoverNext;
      hoverNext = null;
      hover(nu, nv);
    }
  }

  function eventToPlane(e) {
    const r = planeEl.getBoundingClientRect();
    const u = ((e.clientX - r.left) / r.width) * 2 * extent() - extent();
    const v = extent() - ((e.clientY - r.top) / r.height) * 2 * extent();
    return [u, v];
  }

  function pin() {
    if (!cursor) return;
    state.planePoint = lift(cursor[0], cursor[1]);
    document.dispatchEvent(new CustomEvent('plane-point'));
  }

  planeEl.addEventListener('mousemove', (e) => hover(...eventToPlane(e)));
  planeEl.addEventListener('click', (e) => {
    hover(...eventToPlane(e));
    pin();
  });
  planeEl.addEventListener('keydown', (e) => {
    const step = extent() / 10;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (moves[e.key]) {
      e.preventDefault();
      const [u, v] = cursor || [0, 0];
      const clamp = (x) => Math.max(-extent(), Math.min(extent(), x));
      hover(clamp(u + moves[e.key][0]), clamp(v + moves[e.key][1]));
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      if (!cursor) hover(0, 0);
      pin();
    }
  });

  document.getElementById('sample-prior').addEventListener('click', async () => {
    const count = Number(document.getElementById('sample-count').value);
    const reply = await guarded(() => post('/api/sample', { count }));
    if (!reply) return;
    samples = reply.z;
    const box = document.getElementById('samples');
    box.replaceChildren();
    decodeImages(reply.images).forEach((image, k) => {
      const f = el('figure', {}, box);
      const c = el('canvas', { class: 'sample-image', width: String(image.width), height: String(image.height) }, f);
      c.setAttribute('aria-label', `Decoding of prior sample ${k + 1}`);
      paint(c, image);
      el('figcaption', {}, f, String(k + 1));
    });
    drawOverlay();
  });

  const axesFields = document.getElementById('plane-axes-fields');
  const syncControls = () => {
    axesFields.hidden = kind.value !== 'axes';
    originIndex.hidden = originKind.value !== 'item';
  };
  for (const c of [kind, axisI, axisJ, originKind, originIndex, gridN, extentSel]) {
    c.addEventListener('change', () => {
      syncControls();
      redraw();
    });
  }
  dots.addEventListener('change', drawScatter);
  syncControls();

  const legend = document.getElementById('legend');
  (info.classes || []).forEach((name, k) => {
    const s = el('span', {}, legend, name);
    s.style.setProperty('--c', classColor(k));
  });

  guarded(() => get('/api/scatter')).then((reply) => {
    scatter = reply || null;
    if (plane) drawScatter();
  });
  return redraw();
}

export default {
  id: 'manifold',
  title: 'Manifold',
  mount(panel) {
    panel.innerHTML = MARKUP;
    return initManifold();
  },
  show() {},
  hide() {},
};

const MARKUP = `
  <div class="stage">
    <div class="plane" id="plane" tabindex="0" aria-label="Latent plane: arrow keys move the cursor, Enter pins the point">
      <canvas id="plane-grid" width="560" height="560"></canvas>
      <canvas id="plane-scatter" width="560" height="560"></canvas>
      <svg id="plane-overlay" viewBox="0 0 560 560" aria-hidden="true"></svg>
    </div>
    <p class="caption" id="plane-caption"></p>
  </div>
  <aside class="panel">
    <h2>The latent plane</h2>
    <p class="hint">Each tile is the decoder's mean at that point of the plane; dots are encoded test images, coloured by class.</p>
    <div class="field">
      <label for="plane-kind">Plane</label>
      <select id="plane-kind">
        <option value="pca">principal plane of the codes (PCA)</option>
        <option value="axes">two latent axes</option>
      </select>
    </div>
    <div class="field row" id="plane-axes-fields">
      <label>Axes <select id="plane-axis-i" aria-label="Horizontal axis"></select></label>
      <label>and <select id="plane-axis-j" aria-label="Vertical axis"></select></label>
    </div>
    <div class="field">
      <label for="plane-origin">Other coordinates</label>
      <select id="plane-origin">
        <option value="zero">at 0</option>
        <option value="item">at the code of a test image</option>
      </select>
      <input type="number" id="plane-origin-index" min="0" value="0" aria-label="Test image index for the other coordinates" hidden>
    </div>
    <div class="field row">
      <label>Grid <select id="plane-n"><option>10</option><option>15</option><option selected>20</option><option>25</option></select></label>
      <label>Extent ± <select id="plane-extent"><option>2</option><option selected>3</option><option>4</option></select></label>
      <label><input type="checkbox" id="plane-dots" checked> dots</label>
    </div>
    <div class="field row">
      <button type="button" id="sample-prior" class="primary">Sample N(0, I)</button>
      <label>count <select id="sample-count"><option>4</option><option selected>8</option><option>16</option></select></label>
    </div>
    <div id="samples" class="samples" aria-live="polite"></div>
    <h3>At the cursor</h3>
    <div class="preview">
      <canvas id="plane-preview" width="112" height="112" aria-label="Decoding at the cursor"></canvas>
      <p id="plane-preview-text" class="mono small"></p>
    </div>
    <div id="legend" class="legend"></div>
  </aside>
`;
