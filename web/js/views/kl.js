// KL · two distributions: q(z|x) against the prior, and what "Improve KL" does to both.
import { post, guarded } from '../api.js';
import { decodeImages, paint, fillDimSelect, fmt, sub } from '../draw.js';
import { createGaussPlot } from '../gaussplot.js';
import { createInputPicker } from '../inputs.js';
import { state, onInput, topDims, inputOnly } from '../state.js';

const FRAME_MS = 30;

function initKl() {
  const view = document.getElementById('view-kl');
  const plot = createGaussPlot(document.getElementById('kl-plot'));
  const dimI = document.getElementById('kl-dim-i');
  const dimJ = document.getElementById('kl-dim-j');
  const improve = document.getElementById('kl-improve');
  const reset = document.getElementById('kl-reset');
  let shown = null; // {mu, logvar, kl, kl_per_dim, recon_nats, image, step}
  let animation = null;
  let finishAnimation = null; // while an animation runs: shows its last frame at once
  view.dataset.state = 'idle';

  function render() {
    if (!shown) return;
    const dims = [Number(dimI.value), Number(dimJ.value)];
    const mu = dims.map((k) => shown.mu[k]);
    const sigma = dims.map((k) => Math.exp(shown.logvar[k] / 2));
    if (plot.dims[0] !== dims[0] || plot.dims[1] !== dims[1] || shown.step === 0) plot.frame(plot.fit(mu, sigma), dims);
    plot.setQ(mu, sigma);
    document.getElementById('kl-total').textContent = `${fmt(shown.kl)} nats`;
    document.getElementById('kl-shown').textContent = `${fmt(shown.kl_per_dim[dims[0]] + shown.kl_per_dim[dims[1]])} nats`;
    document.getElementById('kl-recon').textContent = `${fmt(shown.recon_nats, 1)} nats`;
    document.getElementById('kl-step').textContent = String(shown.step);
    paint(document.getElementById('kl-recon-image'), shown.image);
    document.querySelector('#kl-plot').setAttribute('aria-label',
      `q(z|x) in z${sub(dims[0])}, z${sub(dims[1])}: mean ${fmt(mu[0])}, ${fmt(mu[1])}; sigma ${fmt(sigma[0])}, ${fmt(sigma[1])}`);
  }

  function showEncoding(encoded) {
    stop();
    shown = { ...encoded, image: decodeImages(encoded.reconstruction)[0], step: 0 };
    paint(document.getElementById('kl-input'), decodeImages(encoded.input)[0]);
    const [i, j] = topDims(encoded.kl_per_dim);
    fillDimSelect(dimI, state.info.latent, i);
    fillDimSelect(dimJ, state.info.latent, j);
    plot.dims = [-1, -1];
    render();
    view.dataset.state = 'idle';
  }

  function stop() {
    if (animation) clearInterval(animation);
    animation = null;
    finishAnimation = null;
    improve.disabled = false;
  }

  improve.addEventListener('click', async () => {
    if (!state.input) return;
    stop();
    improve.disabled = true;
    view.dataset.state = 'animating';
    const steps = Number(document.getElementById('kl-steps').value);
    const input = state.input;
    const reply = await guarded(() => post('/api/kl_steps', { ...inputOnly(input), steps, lr: 0.1 }));
    if (input !== state.input) return; // another input was chosen meanwhile; its view is showing
    if (!reply) {
      stop();
      view.dataset.state = 'idle';
      return;
    }
    const images = decodeImages(reply.images);
    const last = reply.trajectory.length - 1;
    const showStep = (k) => {
      shown = { ...reply.trajectory[k], image: images[k] };
      render();
    };
    finishAnimation = () => {
      showStep(last);
      stop();
      view.dataset.state = 'done';
    };
    let s = 0;
    animation = setInterval(() => {
      s = Math.min(s + 1, last);
      if (s === last) finishAnimation();
      else showStep(s);
    }, FRAME_MS);
  });

  reset.addEventListener('click', () => {
    if (state.encoded) showEncoding(state.encoded);
  });
  dimI.addEventListener('change', render);
  dimJ.addEventListener('change', render);
  onInput(showEncoding);
  createInputPicker(view.querySelector('.input-picker'));
  if (state.encoded) showEncoding(state.encoded);
  return { hide: () => finishAnimation && finishAnimation() };
}

let mounted = null;

export default {
  id: 'kl',
  title: 'KL · two distributions',
  mount(panel) {
    panel.innerHTML = MARKUP;
    mounted = initKl();
  },
  show() {},
  /** A hidden tab runs no animation: a running one jumps to its last frame. */
  hide() {
    if (mounted) mounted.hide();
  },
};

const MARKUP = `
  <div class="stage">
    <svg id="kl-plot" class="plot" viewBox="0 0 480 480" role="img" aria-label="q(z|x) and the prior N(0, I) in two latent dimensions"></svg>
    <p class="caption">Ellipses at 1 and 2 σ. <span class="swatch q"></span> encoder q(z|x) = N(μ, σ²) &nbsp; <span class="swatch p"></span> prior N(0, I)</p>
  </div>
  <aside class="panel">
    <h2>KL · two distributions</h2>
    <div class="input-picker" data-for="kl"></div>
    <div class="field row">
      <label>Dimensions <select id="kl-dim-i" aria-label="Horizontal dimension"></select></label>
      <label>and <select id="kl-dim-j" aria-label="Vertical dimension"></select></label>
    </div>
    <dl class="stats">
      <dt>KL(q ‖ p), all dimensions</dt><dd id="kl-total">–</dd>
      <dt>KL in the two shown</dt><dd id="kl-shown">–</dd>
      <dt>Reconstruction −log p(x | z = μ)</dt><dd id="kl-recon">–</dd>
      <dt>Step</dt><dd id="kl-step">0</dd>
    </dl>
    <div class="pair">
      <figure><canvas id="kl-input" width="112" height="112"></canvas><figcaption>input x</figcaption></figure>
      <figure><canvas id="kl-recon-image" width="112" height="112"></canvas><figcaption>decoded μ</figcaption></figure>
    </div>
    <div class="field row">
      <button type="button" id="kl-improve" class="primary">Improve KL</button>
      <button type="button" id="kl-reset">Reset</button>
      <label>steps <select id="kl-steps"><option>50</option><option selected>100</option><option>200</option></select></label>
    </div>
    <p class="hint">Improve KL takes gradient steps on KL(q ‖ N(0, I)) alone, with respect to μ and log σ². q is pulled onto the prior and the decoded image loses what made it this input: the reconstruction term is what resists in training.</p>
  </aside>
`;
