// Walk the manifold: a path through latent space between two endpoints, decoded step by step.
import { post, guarded, onImageUpload } from '../api.js';
import { decodeImages, paint, el, fmt } from '../draw.js';
import { state } from '../state.js';

const ENDPOINT_DEFAULTS = { a: 0, b: 1 };

function initWalk() {
  const ends = { a: null, b: null }; // {z, label}
  const slider = document.getElementById('walk-t');
  const stepsInput = document.getElementById('walk-steps');
  const strip = document.getElementById('walk-strip');
  const method = () => document.querySelector('input[name="walk-method"]:checked').value;
  let stripRequest = 0; // only the newest strip request may paint: replies can arrive out of order
  let sliderBusy = false;
  let sliderAgain = false;

  async function setEnd(which, source) {
    let z, label;
    if (source.z) {
      z = source.z;
      label = 'a point on the plane';
    } else {
      const e = await guarded(() => post('/api/encode', source.input));
      if (!e) return;
      z = e.mu;
      label = source.input.index !== undefined ? `test image ${source.input.index}` : `uploaded ${source.name}`;
    }
    const reply = await guarded(() => post('/api/decode', { z: [z] }));
    if (!reply) return;
    ends[which] = { z, label };
    paint(document.getElementById(`walk-${which}`), decodeImages(reply.images)[0]);
    document.querySelector(`.endpoint[data-end="${which}"] .chosen`).textContent = `μ of ${label}`;
    await update();
  }

  function buildEndpoint(which) {
    const box = document.querySelector(`.endpoint[data-end="${which}"]`);
    const upper = which.toUpperCase();
    const row = el('div', { class: 'field row' }, box);
    const index = el('input', { type: 'number', min: '0', max: String(state.info.test_size - 1), value: String(ENDPOINT_DEFAULTS[which]), 'aria-label': `Test image for ${upper}` }, row);
    const use = el('button', { type: 'button' }, row, 'Use test image');
    const row2 = el('div', { class: 'field row' }, box);
    const upload = el('label', {}, row2, 'Upload ');
    const file = el('input', { type: 'file', accept: 'image/png,image/jpeg,image/bmp', 'aria-label': `Upload an image for ${upper}` }, upload);
    const fromPlane = el('button', { type: 'button', disabled: '' }, row2, 'Clicked plane point');
    fromPlane.title = 'Click a point on the Manifold tab first';
    el('p', { class: 'chosen hint' }, box);
    use.addEventListener('click', () => setEnd(which, { input: { index: Number(index.value) } }));
    index.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') setEnd(which, { input: { index: Number(index.value) } });
    });
    onImageUpload(file, (png, name) => setEnd(which, { input: { png }, name }));
    fromPlane.addEventListener('click', () => state.planePoint && setEnd(which, { z: state.planePoint }));
    document.addEventListener('plane-point', () => fromPlane.removeAttribute('disabled'));
  }

  async function drawSlider() {
    if (!ends.a || !ends.b) return;
    if (sliderBusy) {
      sliderAgain = true;
      return;
    }
    sliderBusy = true;
    const t = Number(slider.value);
    const reply = await guarded(() => post('/api/interpolate', { a: ends.a.z, b: ends.b.z, t: [t], method: method() }));
    if (reply) {
      paint(document.getElementById('walk-now'), decodeImages(reply.images)[0]);
      document.getElementById('walk-now-caption').textContent = `t = ${fmt(t)}`;
      document.getElementById('walk-now').dataset.t = String(t);
    }
    sliderBusy = false;
    if (sliderAgain) {
      sliderAgain = false;
      drawSlider();
    }
  }

  async function drawStrip() {
    if (!ends.a || !ends.b) return;
    const steps = Math.max(2, Math.min(32, Math.round(Number(stepsInput.value)) || 10));
    stepsInput.value = String(steps);
    const request = ++stripRequest;
    const reply = await guarded(() => post('/api/interpolate', { a: ends.a.z, b: ends.b.z, steps, method: method() }));
    if (!reply || request !== stripRequest) return;
    const images = decodeImages(reply.images);
    const cell = 56, gap = 4;
    strip.width = steps * cell + (steps - 1) * gap;
    strip.height = cell;
    const ctx = strip.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, strip.width, strip.height);
    images.forEach((image, k) => paint(strip, image, k * (cell + gap), 0, cell, cell));
    strip.dataset.steps = String(steps);
  }

  async function update() {
    await Promise.all([drawSlider(), drawStrip()]);
  }

  buildEndpoint('a');
  buildEndpoint('b');
  slider.addEventListener('input', drawSlider);
  stepsInput.addEventListener('change', drawStrip);
  for (const r of document.querySelectorAll('input[name="walk-method"]')) r.addEventListener('change', update);
  document.getElementById('walk-export').addEventListener('click', () => {
    strip.toBlob((blob) => {
      const link = document.getElementById('walk-download');
      if (link.href) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(blob);
      link.click();
    }, 'image/png');
  });
  return Promise.all([setEnd('a', { input: { index: ENDPOINT_DEFAULTS.a } }), setEnd('b', { input: { index: ENDPOINT_DEFAULTS.b } })]);
}

export default {
  id: 'walk',
  title: 'Walk the manifold',
  mount(panel) {
    panel.innerHTML = MARKUP;
    return initWalk();
  },
  show() {},
  hide() {},
};

const MARKUP = `
  <div class="stage">
    <div class="walk-main">
      <figure><canvas id="walk-a" width="112" height="112"></canvas><figcaption>A</figcaption></figure>
      <figure class="big"><canvas id="walk-now" width="224" height="224"></canvas><figcaption id="walk-now-caption">t = 0.00</figcaption></figure>
      <figure><canvas id="walk-b" width="112" height="112"></canvas><figcaption>B</figcaption></figure>
    </div>
    <label class="slider">t <input type="range" id="walk-t" min="0" max="1" step="0.01" value="0" aria-label="Position along the path from A to B"></label>
    <canvas id="walk-strip" class="strip" width="560" height="60" aria-label="Decodings along the path"></canvas>
    <div class="field row">
      <button type="button" id="walk-export">Export strip as PNG</button>
      <a id="walk-download" hidden download="latent-walk.png">download</a>
    </div>
  </div>
  <aside class="panel">
    <h2>Walk the manifold</h2>
    <div class="endpoint" data-end="a"><h3>A</h3></div>
    <div class="endpoint" data-end="b"><h3>B</h3></div>
    <div class="field row">
      <label><input type="radio" name="walk-method" value="linear" checked> linear</label>
      <label><input type="radio" name="walk-method" value="slerp"> slerp</label>
      <label>steps <input type="number" id="walk-steps" min="2" max="32" value="10"></label>
    </div>
    <p class="hint">Linear moves along the straight line; slerp along the great circle, which keeps the norm that N(0, I) codes have in many dimensions.</p>
  </aside>
`;
