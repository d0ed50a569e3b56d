// Training: ELBO, reconstruction and KL per epoch, from the checkpoint's metrics.
import { get, guarded } from '../api.js';
import { svg, el, fmt } from '../draw.js';
import { state } from '../state.js';

const W = 420, H = 260, M = { left: 56, right: 14, top: 12, bottom: 40 };

/** Round tick values covering [lo, hi]. */
function ticks(lo, hi, count = 5) {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function chart(parent, title, epochs, series, unit) {
  const box = el('figure', { class: 'chart' }, parent);
  el('h3', {}, box, title);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title} per epoch` }, box);
  const values = series.flatMap((s) => s.values).filter(Number.isFinite);
  let lo = Math.min(...values), hi = Math.max(...values);
  const pad = (hi - lo) * 0.08 || 1;
  lo -= pad;
  hi += pad;
  const e0 = Math.min(...epochs), e1 = Math.max(...epochs);
  const x = (e) => M.left + ((e - e0) / (e1 - e0 || 1)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - ((v - lo) / (hi - lo)) * (H - M.top - M.bottom);
  const axis = svg('g', { class: 'axis' }, root);
  for (const t of ticks(lo, hi)) {
    svg('line', { class: 'gridline', x1: M.left, x2: W - M.right, y1: y(t), y2: y(t) }, root);
    svg('text', { x: M.left - 6, y: y(t) + 4, 'text-anchor': 'end' }, axis).textContent = String(t);
  }
  for (const t of ticks(e0, e1, Math.min(8, e1 - e0 || 1)).filter(Number.isInteger)) {
    svg('text', { x: x(t), y: H - M.bottom + 16, 'text-anchor': 'middle' }, axis).textContent = String(t);
  }
  svg('line', { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }, axis);
  svg('line', { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }, axis);
  svg('text', { x: (M.left + W - M.right) / 2, y: H - 6, 'text-anchor': 'middle' }, axis).textContent = 'epoch';
  svg('text', { x: 12, y: (M.top + H - M.bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(M.top + H - M.bottom) / 2})` }, axis).textContent = unit;
  for (const s of series) {
    const pts = epochs.map((e, k) => [e, s.values[k]]).filter((p) => Number.isFinite(p[1]));
    svg('path', { class: s.cls, d: pts.map((p, k) => `${k ? 'L' : 'M'}${x(p[0])},${y(p[1])}`).join('') }, root);
    for (const p of pts) svg('circle', { class: s.cls, cx: x(p[0]), cy: y(p[1]), r: 2.5 }, root).appendChild(svg('title')).textContent = `${s.name}, epoch ${p[0]}: ${fmt(p[1])} ${unit}`;
  }
  const legend = el('figcaption', {}, box);
  legend.innerHTML = series.map((s) => `<span class="mono" style="color:var(--${s.cls === 'train' ? 'accent' : 'q'})">━</span> ${s.name} (last ${fmt(s.values[s.values.length - 1])})`).join(' &nbsp; ');
}

async function initTraining() {
  const reply = await guarded(() => get('/api/metrics'));
  if (!reply) return;
  const box = document.getElementById('charts');
  box.replaceChildren();
  const rows = reply.epochs || [];
  const caption = document.getElementById('training-caption');
  if (rows.length === 0) {
    caption.textContent = 'This checkpoint holds no per-epoch metrics.';
    return;
  }
  const epochs = rows.map((r) => r.epoch);
  const col = (k) => rows.map((r) => (typeof r[k] === 'number' ? r[k] : NaN));
  chart(box, 'ELBO (higher is better)', epochs, [{ name: 'train', cls: 'train', values: col('train_elbo') }, { name: 'test', cls: 'test', values: col('test_elbo') }], 'nats per example');
  chart(box, 'Reconstruction −E_q[log p(x|z)]', epochs, [{ name: 'train', cls: 'train', values: col('train_recon') }, { name: 'test', cls: 'test', values: col('test_recon') }], 'nats per example');
  chart(box, 'KL(q(z|x) ‖ N(0, I))', epochs, [{ name: 'train', cls: 'train', values: col('train_kl') }, { name: 'test', cls: 'test', values: col('test_kl') }], 'nats per example');
  const last = rows[rows.length - 1];
  caption.textContent = `${rows.length} epoch${rows.length === 1 ? '' : 's'}; train values are means over each epoch's batches (with that epoch's KL weight), test values are at the epoch's end. ${last.active_units !== undefined ? `Active units after the last epoch: ${last.active_units} of ${state.info.latent}.` : ''}`;
}

export default {
  id: 'training',
  title: 'Training',
  mount(panel) {
    panel.innerHTML = MARKUP;
    return initTraining();
  },
  show() {},
  hide() {},
};

const MARKUP = `
  <div class="charts" id="charts"></div>
  <p class="caption" id="training-caption"></p>
`;
