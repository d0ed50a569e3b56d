// Anomaly: the distribution of an anomaly score over the test split, a threshold slider with the
// false-positive rate it implies, and the highest-scoring inputs beside their error maps.
import { get, guarded } from '../api.js';
import { svg, el, fmt, decodeImages, paint } from '../draw.js';
import { className } from '../state.js';

const W = 640, H = 220, M = { left: 48, right: 12, top: 10, bottom: 34 };
const ABOUT = {
  neg_elbo: '−ELBO in nats: reconstruction plus KL. How unlikely the input is under the model (a bound).',
  recon_error: 'Squared error between the input and its reconstruction from the encoder mean.',
  prior_nll: '−log N(μ; 0, I): how far the encoding lies from the prior.',
  mahalanobis: 'Distance of the encoding from the training encodings, in units of their covariance.',
  combined: 'Reconstruction error and Mahalanobis distance together, each in robust standard units of the training data (log scale).',
  complexity_adjusted: '−ELBO minus the input’s PNG length in nats: removes the part of the likelihood that only reflects how simple an input is.',
};

let reply = null;

function histogram() {
  const box = document.getElementById('an-histogram');
  box.replaceChildren();
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Histogram of ${reply.score} over the test split` }, box);
  const { lo, hi, counts } = reply.histogram;
  const peak = Math.max(...counts, 1);
  const x = (v) => M.left + ((v - lo) / (hi - lo || 1)) * (W - M.left - M.right);
  const y = (c) => H - M.bottom - (c / peak) * (H - M.top - M.bottom);
  const bw = (W - M.left - M.right) / counts.length;
  counts.forEach((c, k) => svg('rect', { class: 'bar', x: M.left + k * bw + 0.5, y: y(c), width: Math.max(bw - 1, 1), height: H - M.bottom - y(c) }, root));
  const axis = svg('g', { class: 'axis' }, root);
  svg('line', { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }, axis);
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    svg('text', { x: x(v), y: H - M.bottom + 16, 'text-anchor': 'middle' }, axis).textContent = fmt(v);
  }
  svg('text', { x: (M.left + W - M.right) / 2, y: H - 4, 'text-anchor': 'middle' }, axis).textContent = `${reply.score} (higher is more anomalous)`;
  svg('text', { x: 12, y: (M.top + H - M.bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(M.top + H - M.bottom) / 2})` }, axis).textContent = 'test images';
  const cal = reply.calibration;
  if (cal && cal.score === reply.score) {
    svg('line', { class: 'calibrated', x1: x(cal.threshold), x2: x(cal.threshold), y1: M.top, y2: H - M.bottom }, root);
  }
  svg('line', { class: 'threshold', id: 'an-line', x1: 0, x2: 0, y1: M.top, y2: H - M.bottom }, root);
  return x;
}

function update(x) {
  const q = Number(document.getElementById('an-threshold').value);
  const t = reply.quantiles[q];
  // Share of the test split strictly above t, from the quantiles (exact to 0.1%).
  const above = reply.quantiles.filter((v) => v > t).length / reply.quantiles.length;
  const line = document.getElementById('an-line');
  line.setAttribute('x1', x(t));
  line.setAttribute('x2', x(t));
  const cal = reply.calibration && reply.calibration.score === reply.score ? ` · calibrated threshold ${fmt(reply.calibration.threshold)} (target FPR ${(100 * reply.calibration.fpr).toFixed(1)}%)` : '';
  document.getElementById('an-readout').textContent = `threshold ${fmt(t)} · flags ${(100 * above).toFixed(1)}% of the test split (false-positive rate if it is normal)${cal}`;
  document.getElementById('an-readout').dataset.fpr = String(above);
}

function topImages() {
  const box = document.getElementById('an-top');
  box.replaceChildren();
  const inputs = decodeImages(reply.inputs), maps = decodeImages(reply.error_maps);
  reply.top.forEach((item, k) => {
    const fig = el('figure', { class: 'anomaly' }, box);
    const a = el('canvas', { width: 56, height: 56, 'aria-label': `test image ${item.index}` }, fig);
    const b = el('canvas', { width: 56, height: 56, class: 'errmap', 'aria-label': `its error map` }, fig);
    paint(a, inputs[k]);
    paint(b, maps[k]);
    el('figcaption', {}, fig, `#${item.index}${item.label !== undefined ? ` ${className(item.label)}` : ''} · ${fmt(item.score)}`);
  });
}

async function load(score) {
  const r = await guarded(() => get(`/api/anomaly?score=${encodeURIComponent(score)}`));
  if (!r) return;
  reply = r;
  const select = document.getElementById('an-score');
  if (select.options.length === 0) {
    for (const n of r.names) el('option', { value: n }, select, n);
    select.value = r.score;
  }
  document.getElementById('an-about').textContent = ABOUT[r.score] || '';
  const x = histogram();
  topImages();
  const slider = document.getElementById('an-threshold');
  slider.oninput = () => update(x);
  update(x);
  document.getElementById('view-anomaly').dataset.ready = 'true';
}

function initAnomaly() {
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    load('neg_elbo');
  };
  document.getElementById('an-score').addEventListener('change', (e) => load(e.target.value));
  return { show: start };
}

let mounted = null;

export default {
  id: 'anomaly',
  title: 'Anomaly',
  mount(panel) {
    panel.innerHTML = MARKUP;
    mounted = initAnomaly();
  },
  /** Scores are computed on the server on first use (a few seconds): only when the tab is first shown. */
  show() {
    if (mounted) mounted.show();
  },
  hide() {},
};

const MARKUP = `
  <div class="stage">
    <figure class="chart wide"><h3 id="an-title">Scores of the test split</h3><div id="an-histogram"></div></figure>
    <label class="slider">threshold <input type="range" id="an-threshold" min="0" max="1000" step="1" value="990" aria-label="Anomaly threshold, as a quantile of the test split's scores"></label>
    <p class="readout" id="an-readout" aria-live="polite"></p>
    <h3>Highest-scoring test images, each beside its squared reconstruction error</h3>
    <div class="anomalies" id="an-top"></div>
  </div>
  <aside class="panel">
    <h2>Anomaly scores</h2>
    <div class="field"><label for="an-score">Score</label><select id="an-score"></select></div>
    <p class="hint" id="an-about"></p>
    <p class="hint">The test split is taken as normal data: the share of it above the threshold is the false-positive rate that threshold would have. <code>latent calibrate</code> fixes a threshold at a target rate and keeps it in the checkpoint; <code>latent score</code> then flags new data.</p>
  </aside>
`;
