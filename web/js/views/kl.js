// KL · two distributions: q(z|x) against the prior, and what "Improve KL" does to both.
import { post, guarded } from '../api.js';
import { decodeImages, paint, fillDimSelect, fmt, sub } from '../draw.js';
import { createGaussPlot } from '../gaussplot.js';
import { createInputPicker } from '../inputs.js';
import { state, onInput, topDims, inputOnly } from '../state.js';

const FRAME_MS = 30;

export function initKl() {
  const view = document.getElementById('view-kl');
  const plot = createGaussPlot(document.getElementById('kl-plot'));
  const dimI = document.getElementById('kl-dim-i');
  const dimJ = document.getElementById('kl-dim-j');
  const improve = document.getElementById('kl-improve');
  const reset = document.getElementById('kl-reset');
  let shown = null; // {mu, logvar, kl, kl_per_dim, recon_nats, image, step}
  let animation = null;
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
    let s = 0;
    animation = setInterval(() => {
      s = Math.min(s + 1, reply.trajectory.length - 1);
      shown = { ...reply.trajectory[s], image: images[s] };
      render();
      if (s === reply.trajectory.length - 1) {
        stop();
        view.dataset.state = 'done';
      }
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
}

