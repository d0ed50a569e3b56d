// Train: a new VAE trained live on the server. One click trains a 2-D model; while it trains the
// server streams (Server-Sent Events, /api/train/stream) every step's loss, and every few hundred
// steps the test images' means, a row of prior samples and (2-D) the decoded grid, so the clusters
// move apart and the prior fills in as one watches. Pause, resume, stop (the checkpoint is kept).
import { get, post, guarded } from '../api.js';
import { decodeImages, paint, el, fmt, classColor } from '../draw.js';

let stream = null;          // the EventSource while the tab is shown
let lastSeq = 0;            // the last event drawn (a reconnect resumes after it)
let steps = [];             // [global_step, loss, recon, kl] per step of the current run
let snapshots = 0;          // snapshots drawn

const $ = (id) => document.getElementById(id);

// Loss and reconstruction on the left scale, KL (far smaller) on its own, right scale.
function drawCurve() {
  const canvas = $('train-curve');
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (steps.length < 2) return;
  const range = (k) => {
    const v = steps.slice(Math.min(5, steps.length - 2)).map((s) => s[k]).filter(Number.isFinite);
    const lo = Math.min(...v), hi = Math.max(...v);
    return [lo, hi > lo ? hi : lo + 1];
  };
  const [lo, hi] = range(1), [klo, khi] = range(3);
  const x = (i) => 44 + (i / (steps.length - 1)) * (canvas.width - 88);
  const y = (v, a, b) => canvas.height - 16 - ((Math.max(a, Math.min(v, b)) - a) / (b - a)) * (canvas.height - 28);
  const line = (k, color, a, b) => {
    ctx.strokeStyle = color;
    ctx.beginPath();
    steps.forEach((s, i) => (i ? ctx.lineTo(x(i), y(s[k], a, b)) : ctx.moveTo(x(i), y(s[k], a, b))));
    ctx.stroke();
  };
  line(1, '#4e79a7', lo, hi);
  line(2, '#59a14f', lo, hi);
  line(3, '#e15759', klo, khi);
  ctx.font = '11px sans-serif';
  ctx.fillStyle = '#4e79a7';
  ctx.fillText(fmt(hi, 1), 2, 14);
  ctx.fillText(fmt(lo, 1), 2, canvas.height - 16);
  ctx.fillStyle = '#e15759';
  ctx.fillText(fmt(khi, 1), canvas.width - 40, 14);
  ctx.fillText(fmt(klo, 1), canvas.width - 40, canvas.height - 16);
  canvas.dataset.points = String(steps.length);
}

function drawSnapshot(e) {
  const canvas = $('train-scatter');
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const s = (v) => canvas.width / 2 + (v / 4) * (canvas.width / 2);  // [-4, 4] across the canvas
  e.scatter.points.forEach((p, k) => {
    ctx.fillStyle = e.scatter.labels ? classColor(e.scatter.labels[k]) : '#4e79a7';
    ctx.fillRect(s(p[0]) - 1.5, canvas.height - s(p[1] ?? 0) - 1.5, 3, 3);
  });
  canvas.dataset.step = String(e.global_step);
  canvas.dataset.first = JSON.stringify(e.scatter.points[0]);
  const samples = decodeImages(e.samples);
  const row = $('train-samples');
  samples.forEach((img, k) => paint(row, img, k * 48, 0, 48, 48));
  const grid = $('train-grid');
  grid.hidden = !e.grid;
  if (e.grid) decodeImages(e.grid).forEach((img, k) => paint(grid, img, (k % 10) * 24, Math.floor(k / 10) * 24, 24, 24));
  snapshots += 1;
  $('train-snapshots').textContent = `${snapshots} snapshot${snapshots === 1 ? '' : 's'}, the last at step ${e.global_step}`;
}

function onEvent(e) {
  lastSeq = Math.max(lastSeq, e.seq);
  if (e.type === 'step') {
    steps.push([e.global_step, e.loss, e.recon ?? NaN, e.kl ?? NaN]);
    if (steps.length % 10 === 1) drawCurve();
    $('train-progress').textContent = `epoch ${e.epoch + 1}, step ${e.step}/${e.steps_per_epoch}: loss ${fmt(e.loss)}, recon ${fmt(e.recon)}, KL ${fmt(e.kl)} nats`;
  } else if (e.type === 'snapshot') {
    drawCurve();
    drawSnapshot(e);
  } else if (e.type === 'epoch') {
    const li = el('li', {}, $('train-epochs'), `epoch ${e.epoch}: test ELBO ${fmt(e.test_elbo)} nats, active units ${e.active_units ?? '–'}, ${fmt(e.samples_per_s, 0)} samples/s`);
    li.dataset.epoch = String(e.epoch);
  } else if (e.type === 'state') {
    if (e.state === 'running' && e.config) {  // a new run: its curves start empty
      steps = [];
      snapshots = 0;
      $('train-epochs').replaceChildren();
    }
    $('train-state').textContent = `${e.run}: ${e.state}${e.message ? ` (${e.message})` : ''}${e.checkpoint ? ` · checkpoint ${e.checkpoint}` : ''}`;
    $('train-state').dataset.state = e.state;
    const live = e.state === 'running' || e.state === 'paused';
    $('train-start').disabled = live;
    $('train-pause').disabled = !live;
    $('train-stop').disabled = !live;
    $('train-pause').textContent = e.state === 'paused' ? 'Resume' : 'Pause';
    $('train-use').hidden = !e.checkpoint;
    $('train-use').dataset.run = e.run;
  }
}

function connect() {
  if (stream) return;
  stream = new EventSource(`/api/train/stream?after=${lastSeq}`);
  stream.onmessage = (m) => onEvent(JSON.parse(m.data));
}

function number(id) {
  return Number($(id).value);
}

async function start() {
  const body = {
    name: $('train-name').value.trim(),
    data: $('train-data').value,
    model: $('train-model').value,
    latent: number('train-latent'),
    hidden: $('train-hidden').value.split(',').map((s) => Number(s.trim())).filter((v) => v > 0),
    beta: number('train-beta'),
    kl_warmup: number('train-warmup'),
    epochs: number('train-epochs-n'),
    batch_size: number('train-batch'),
    lr: number('train-lr'),
  };
  if ($('train-limit').value) body.limit = number('train-limit');
  body.snapshot_every = number('train-snap');
  const reply = await guarded(() => post('/api/train/start', body));
  if (reply) $('train-name').value = `${body.name.replace(/-\d+$/, '')}-${Date.now() % 100000}`;
}

export default {
  id: 'train',
  title: 'Train',
  optional: true,
  async mount(panel) {
    panel.innerHTML = MARKUP;
    const status = await get('/api/train').catch(() => null);  // a server that does not train: no tab
    if (!status) return false;
    $('train-data').replaceChildren(...status.datasets.map((d) => el('option', { value: d }, null, d)));
    $('train-name').value = `run-${Date.now() % 100000}`;
    $('train-start').addEventListener('click', start);
    $('train-pause').addEventListener('click', () => guarded(() => post(`/api/train/${$('train-pause').textContent === 'Resume' ? 'resume' : 'pause'}`, {})));
    $('train-stop').addEventListener('click', () => guarded(() => post('/api/train/stop', {})));
    $('train-use').addEventListener('click', async () => {
      if (await guarded(() => post('/api/train/use', { run: $('train-use').dataset.run }))) {
        location.hash = '#manifold';
        location.reload();  // every tab loads the new model
      }
    });
    return true;
  },
  show() { connect(); },
  hide() {
    if (stream) stream.close();
    stream = null;
  },
};

const MARKUP = `
  <form class="controls" id="train-form" onsubmit="return false">
    <label>name <input id="train-name" size="14"></label>
    <label>data <select id="train-data"></select></label>
    <label>model <select id="train-model"><option value="mlp">mlp</option><option value="conv">conv</option></select></label>
    <label>hidden <input id="train-hidden" value="400" size="8"></label>
    <label>latent <input id="train-latent" type="number" min="2" max="64" value="2"></label>
    <label>β <input id="train-beta" type="number" min="0" step="0.1" value="1"></label>
    <label>KL warm-up (epochs) <input id="train-warmup" type="number" min="0" step="1" value="0"></label>
    <label>epochs <input id="train-epochs-n" type="number" min="1" value="10"></label>
    <label>batch <input id="train-batch" type="number" min="1" value="128"></label>
    <label>learning rate <input id="train-lr" type="number" min="0" step="0.0001" value="0.001"></label>
    <label>examples (0: all) <input id="train-limit" type="number" min="0" value=""></label>
    <label>redraw every (steps) <input id="train-snap" type="number" min="1" value="200"></label>
    <button type="button" id="train-start">Start</button>
    <button type="button" id="train-pause" disabled>Pause</button>
    <button type="button" id="train-stop" disabled>Stop</button>
    <button type="button" id="train-use" hidden>Show this model in every tab</button>
  </form>
  <p class="caption" id="train-state">No run yet: Start trains a VAE with a 2-D latent on Fashion-MNIST.</p>
  <p class="caption" id="train-progress"></p>
  <div class="charts">
    <figure class="chart"><h3>Per step: loss (blue) and reconstruction (green), nats, left; KL (red), right</h3><canvas id="train-curve" width="380" height="220"></canvas></figure>
    <figure class="chart"><h3>Test images' means (first two latent axes)</h3><canvas id="train-scatter" width="300" height="300"></canvas></figure>
    <figure class="chart"><h3>Decoded grid over [−3, 3]² (2-D models)</h3><canvas id="train-grid" width="240" height="240" hidden></canvas></figure>
  </div>
  <figure class="chart"><h3>Prior samples z ~ N(0, I), the same codes at every snapshot</h3>
  <canvas id="train-samples" width="384" height="48"></canvas></figure>
  <p class="caption" id="train-snapshots"></p>
  <ol id="train-epochs"></ol>
`;
