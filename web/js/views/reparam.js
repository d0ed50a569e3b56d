// Reparameterization: z = mu + sigma * eps, drawn one eps at a time.
import { post, guarded } from '../api.js';
import { decodeImages, paint, fillDimSelect, fmt, gaussian, svg, sub, el } from '../draw.js';
import { createGaussPlot } from '../gaussplot.js';
import { createInputPicker } from '../inputs.js';
import { state, onInput, topDims } from '../state.js';

const STAGE_MS = 260; // eps appears, is scaled by sigma, is shifted by mu

function initReparam() {
  const view = document.getElementById('view-reparam');
  const plot = createGaussPlot(document.getElementById('rp-plot'));
  const dimI = document.getElementById('rp-dim-i');
  const dimJ = document.getElementById('rp-dim-j');
  const play = document.getElementById('rp-play');
  let draws = []; // full-dimensional {eps, z}
  let playing = null;
  let busy = false;

  const dims = () => [Number(dimI.value), Number(dimJ.value)];
  const sigmaOf = (k) => Math.exp(state.encoded.logvar[k] / 2);

  function frame() {
    if (!state.encoded) return;
    const [i, j] = dims();
    const mu = [state.encoded.mu[i], state.encoded.mu[j]];
    const sigma = [sigmaOf(i), sigmaOf(j)];
    plot.frame(plot.fit(mu, sigma), [i, j]);
    plot.setQ(mu, sigma);
    plot.layers.draws.replaceChildren();
    for (const d of draws) svg('circle', { class: 'draw', cx: plot.x(d.z[i]), cy: plot.y(d.z[j]), r: 2.5 }, plot.layers.draws);
    document.getElementById('rp-h-i').textContent = `z${sub(i)}`;
    document.getElementById('rp-h-j').textContent = `z${sub(j)}`;
    document.getElementById('rp-count').textContent = `${draws.length} draw${draws.length === 1 ? '' : 's'}`;
  }

  function table(d) {
    const [i, j] = dims();
    const rows = [
      ['ε ~ N(0, 1)', (k) => d.eps[k]],
      ['σ', (k) => sigmaOf(k)],
      ['σ · ε', (k) => sigmaOf(k) * d.eps[k]],
      ['μ', (k) => state.encoded.mu[k]],
      ['z = μ + σ · ε', (k) => d.z[k]],
      ['∂z/∂μ', () => 1],
      ['∂z/∂σ = ε', (k) => d.eps[k]],
    ];
    const body = document.querySelector('#rp-table tbody');
    body.replaceChildren();
    for (const [name, f] of rows) {
      const tr = el('tr', {}, body);
      el('td', {}, tr, name);
      el('td', {}, tr, fmt(f(i), 3));
      el('td', {}, tr, fmt(f(j), 3));
    }
  }

  function animateDot(d) {
    const [i, j] = dims();
    const top = plot.layers.top;
    top.replaceChildren();
    const pts = [
      [d.eps[i], d.eps[j]],
      [sigmaOf(i) * d.eps[i], sigmaOf(j) * d.eps[j]],
      [d.z[i], d.z[j]],
    ];
    const dot = svg('circle', { class: 'eps-dot', cx: plot.x(pts[0][0]), cy: plot.y(pts[0][1]), r: 5 }, top);
    const path = svg('polyline', { class: 'arrow', points: `${plot.x(pts[0][0])},${plot.y(pts[0][1])}` }, top);
    return new Promise((resolve) => {
      const start = performance.now();
      const tick = (now) => {
        // A frame's timestamp can precede `start` (it is when the frame began).
        const t = Math.min(Math.max(now - start, 0) / STAGE_MS, 2);
        const k = Math.min(Math.floor(t), 1);
        const f = t - k;
        const x = pts[k][0] + (pts[k + 1][0] - pts[k][0]) * f;
        const y = pts[k][1] + (pts[k + 1][1] - pts[k][1]) * f;
        dot.setAttribute('cx', plot.x(x));
        dot.setAttribute('cy', plot.y(y));
        const seen = pts.slice(0, k + 1).map((p) => `${plot.x(p[0])},${plot.y(p[1])}`);
        path.setAttribute('points', `${seen.join(' ')} ${plot.x(x)},${plot.y(y)}`);
        if (t < 2) requestAnimationFrame(tick);
        else resolve();
      };
      requestAnimationFrame(tick);
    });
  }

  async function drawOne() {
    if (!state.encoded || busy) return;
    busy = true;
    try {
      const eps = state.encoded.mu.map(() => gaussian());
      const z = state.encoded.mu.map((m, k) => m + sigmaOf(k) * eps[k]);
      const d = { eps, z };
      table(d);
      const [reply] = await Promise.all([guarded(() => post('/api/decode', { z: [z] })), animateDot(d)]);
      if (reply) paint(document.getElementById('rp-image'), decodeImages(reply.images)[0]);
      draws.push(d);
      frame();
    } finally {
      busy = false;
    }
  }

  function stopPlay() {
    if (playing) clearInterval(playing);
    playing = null;
    play.textContent = 'Play';
    play.setAttribute('aria-pressed', 'false');
  }

  document.getElementById('rp-step').addEventListener('click', drawOne);
  play.addEventListener('click', () => {
    if (playing) return stopPlay();
    play.textContent = 'Pause';
    play.setAttribute('aria-pressed', 'true');
    drawOne();
    playing = setInterval(drawOne, 2 * STAGE_MS + 120);
  });
  document.getElementById('rp-clear').addEventListener('click', () => {
    draws = [];
    plot.layers.top.replaceChildren();
    frame();
  });
  dimI.addEventListener('change', frame);
  dimJ.addEventListener('change', frame);
  onInput((encoded) => {
    stopPlay();
    draws = [];
    const [i, j] = topDims(encoded.kl_per_dim);
    fillDimSelect(dimI, state.info.latent, i);
    fillDimSelect(dimJ, state.info.latent, j);
    paint(document.getElementById('rp-input'), decodeImages(encoded.input)[0]);
    document.querySelector('#rp-table tbody').replaceChildren();
    plot.layers.top.replaceChildren();
    frame();
  });
  createInputPicker(view.querySelector('.input-picker'));
  return { hide: stopPlay };
}

let mounted = null;

export default {
  id: 'reparam',
  title: 'Reparameterization',
  mount(panel) {
    panel.innerHTML = MARKUP;
    mounted = initReparam();
  },
  show() {},
  /** Playing stops when the tab is hidden. */
  hide() {
    if (mounted) mounted.hide();
  },
};

const MARKUP = `
  <div class="stage">
    <svg id="rp-plot" class="plot" viewBox="0 0 480 480" role="img" aria-label="Samples z = μ + σ·ε"></svg>
    <p class="caption">ε ~ N(0, I) <span class="swatch eps"></span> is scaled by σ, shifted by μ, and lands at z <span class="swatch q"></span>.</p>
  </div>
  <aside class="panel">
    <h2>Reparameterization</h2>
    <div class="input-picker" data-for="reparam"></div>
    <div class="field row">
      <label>Dimensions <select id="rp-dim-i" aria-label="Horizontal dimension"></select></label>
      <label>and <select id="rp-dim-j" aria-label="Vertical dimension"></select></label>
    </div>
    <div class="field row">
      <button type="button" id="rp-step" class="primary">Draw ε</button>
      <button type="button" id="rp-play">Play</button>
      <button type="button" id="rp-clear">Clear</button>
      <span class="muted" id="rp-count">0 draws</span>
    </div>
    <table class="numbers" id="rp-table">
      <thead><tr><th></th><th id="rp-h-i">z_i</th><th id="rp-h-j">z_j</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="pair">
      <figure><canvas id="rp-image" width="112" height="112"></canvas><figcaption>decoded z</figcaption></figure>
      <figure><canvas id="rp-input" width="112" height="112"></canvas><figcaption>input x</figcaption></figure>
    </div>
    <p class="hint">z = μ + σ ⊙ ε moves the randomness into ε, so z is a differentiable function of μ and σ: ∂z/∂μ = 1 and ∂z/∂σ = ε. That is what lets gradients reach the encoder.</p>
  </aside>
`;
