// SD latents: Stable Diffusion's first-stage autoencoder (latent serve --vae): an image's latent
// channels, its decoding, and a walk between two images in SD latent space.
import { get, post, guarded, onImageUpload } from '../api.js';
import { decodeImages, paint, el, fmt } from '../draw.js';

/** False when the server has no SD autoencoder (started without --vae): the tab stays hidden. */
async function initSd() {
  let info;
  try {
    info = await get('/api/sd/info');
  } catch (e) {
    return false;
  }
  const latentSide = info.size / info.factor;
  document.getElementById('sd-about').textContent =
    `${info.type} from ${info.file} (${info.layout}, ${info.dtype}): ${info.size}×${info.size} RGB ↔ ` +
    `${info.latent_channels}×${latentSide}×${latentSide} latents, scaling factor ${info.scaling_factor}.`;
  const status = document.getElementById('sd-status');
  const slider = document.getElementById('sd-t');
  const walkButton = document.getElementById('sd-walk');
  const strip = document.getElementById('sd-strip');
  const ends = { a: null, b: null };
  let frames = [];
  let ts = [];

  async function busy(message, fn) {
    status.textContent = message;
    document.getElementById('view-sd').dataset.busy = 'true';
    try {
      return await fn();
    } finally {
      delete document.getElementById('view-sd').dataset.busy;
    }
  }

  async function setImage(which, png, name) {
    const reply = await busy(`encoding and decoding ${name}…`, () => guarded(() => post('/api/sd/encode', { png })));
    if (!reply) {
      status.textContent = '';
      return;
    }
    ends[which] = reply.latents;
    const box = document.querySelector(`.sd-image[data-end="${which}"]`);
    box.querySelector('h3').textContent = `Image ${which.toUpperCase()}: ${name}`;
    paint(box.querySelector('.sd-input'), decodeImages(reply.input)[0]);
    paint(box.querySelector('.sd-decoded'), decodeImages(reply.decoded)[0]);
    box.querySelector('.sd-decoded-caption').textContent = `decoded · PSNR ${fmt(reply.psnr, 1)} dB`;
    const channels = box.querySelector('.sd-channels');
    channels.replaceChildren();
    decodeImages(reply.channels).forEach((image, k) => {
      const fig = el('figure', {}, channels);
      const canvas = el('canvas', { width: image.width, height: image.height, 'data-channel': String(k) }, fig);
      paint(canvas, image);
      const [lo, hi] = reply.ranges[k];
      el('figcaption', {}, fig, `ch ${k}: ${fmt(lo)}…${fmt(hi)}`);
    });
    status.textContent = `${name}: ${reply.shape.join('×')} latents`;
    walkButton.disabled = !(ends.a && ends.b);
  }

  function show(k) {
    if (!frames.length) return;
    slider.value = String(k);
    paint(document.getElementById('sd-now'), frames[k]);
    document.getElementById('sd-now-caption').textContent = `t = ${fmt(ts[k])}`;
    [...strip.children].forEach((c, i) => c.classList.toggle('current', i === k));
  }

  walkButton.addEventListener('click', async () => {
    const steps = Math.max(2, Math.min(info.max_steps, Number(document.getElementById('sd-steps').value) || 5));
    const method = document.querySelector('input[name="sd-method"]:checked').value;
    walkButton.disabled = true;
    const reply = await busy(`decoding ${steps} steps (${method})…`, () =>
      guarded(() => post('/api/sd/interpolate', { a: ends.a, b: ends.b, steps, method })));
    walkButton.disabled = false;
    if (!reply) {
      status.textContent = '';
      return;
    }
    frames = decodeImages(reply.images);
    ts = reply.t;
    strip.replaceChildren();
    frames.forEach((image, k) => {
      const c = el('canvas', { width: image.width, height: image.height, title: `t = ${fmt(ts[k])}` }, strip);
      paint(c, image);
      c.addEventListener('click', () => show(k));
    });
    slider.max = String(frames.length - 1);
    slider.disabled = false;
    show(0);
    status.textContent = `walk of ${frames.length} decodings, ${reply.method}`;
  });
  slider.addEventListener('input', () => show(Number(slider.value)));
  onImageUpload(document.getElementById('sd-file-a'), (png, name) => setImage('a', png, name));
  onImageUpload(document.getElementById('sd-file-b'), (png, name) => setImage('b', png, name));
}

export default {
  id: 'sd',
  title: 'SD latents',
  optional: true, // its tab shows once mount() finds an autoencoder on the server
  mount(panel) {
    panel.innerHTML = MARKUP;
    return initSd();
  },
  show() {},
  hide() {},
};

const MARKUP = `
  <div class="stage">
    <div class="sd-images" id="sd-images">
      <div class="sd-image" data-end="a">
        <h3>Image A</h3>
        <div class="sd-pair">
          <figure><canvas class="sd-input" width="256" height="256"></canvas><figcaption>input</figcaption></figure>
          <figure><canvas class="sd-decoded" width="256" height="256"></canvas><figcaption class="sd-decoded-caption">decoded</figcaption></figure>
        </div>
        <div class="sd-channels" aria-label="Latent channels of image A"></div>
      </div>
      <div class="sd-image" data-end="b">
        <h3>Image B</h3>
        <div class="sd-pair">
          <figure><canvas class="sd-input" width="256" height="256"></canvas><figcaption>input</figcaption></figure>
          <figure><canvas class="sd-decoded" width="256" height="256"></canvas><figcaption class="sd-decoded-caption">decoded</figcaption></figure>
        </div>
        <div class="sd-channels" aria-label="Latent channels of image B"></div>
      </div>
    </div>
    <h3>Walk from A to B in SD latent space</h3>
    <div class="walk-main"><figure class="big"><canvas id="sd-now" width="256" height="256"></canvas><figcaption id="sd-now-caption">walk not decoded yet</figcaption></figure></div>
    <label class="slider">t <input type="range" id="sd-t" min="0" max="4" step="1" value="0" disabled aria-label="Step along the decoded walk from A to B"></label>
    <div class="sd-strip" id="sd-strip" aria-label="Decodings along the walk"></div>
    <p class="readout" id="sd-status" aria-live="polite"></p>
  </div>
  <aside class="panel">
    <h2>Stable Diffusion latents</h2>
    <p class="hint" id="sd-about"></p>
    <div class="field"><label for="sd-file-a">Image A</label><input type="file" id="sd-file-a" accept="image/png,image/jpeg,image/bmp"></div>
    <div class="field"><label for="sd-file-b">Image B</label><input type="file" id="sd-file-b" accept="image/png,image/jpeg,image/bmp"></div>
    <div class="field row">
      <label><input type="radio" name="sd-method" value="slerp" checked> slerp</label>
      <label><input type="radio" name="sd-method" value="linear"> linear</label>
      <label>steps <input type="number" id="sd-steps" min="2" max="9" value="5"></label>
    </div>
    <div class="field row"><button type="button" id="sd-walk" disabled>Decode the walk</button></div>
    <p class="hint">Each image is cropped to its central square and resized, encoded to the mean of its posterior (times the scaling factor: what diffusion sees) and decoded back. The channels are shown each stretched over its own range. Every step of the walk is a full decode of the autoencoder.</p>
  </aside>
`;
