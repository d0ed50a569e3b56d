// Molecules: a SMILES VAE's latent space. Draw a molecule (SMILES) and see its structure, its place
// on the latent plane and its decoding; the plane of the test molecules coloured by a property, with
// prior samples drawn as structures on hover; a walk between two molecules; an optimization
// trajectory. Invalid decodings are shown as such, never hidden.
import { get, post, guarded } from '../api.js';
import { el, fmt } from '../draw.js';
import { state } from '../state.js';

const SIZE = 420; // the plane's canvas, in pixels

function structure(box, m, caption) {
  box.replaceChildren();
  box.classList.toggle('invalid', !m.valid);
  const pic = el('div', { class: 'svg' }, box);
  if (m.valid && m.svg) pic.innerHTML = m.svg;
  else pic.textContent = 'invalid SMILES';
  el('div', { class: 'mono smiles' }, box, m.smiles || '(empty)');
  if (caption) el('div', { class: 'muted' }, box, caption);
  if (m.properties) {
    el('div', { class: 'muted props' }, box, Object.entries(m.properties).map(([k, v]) => `${k} ${fmt(v)}`).join(' · '));
  }
}

// Blue (low) to yellow (high).
function colour(t) {
  const c = Math.max(0, Math.min(1, t));
  return `hsl(${230 - 180 * c}, 70%, ${35 + 25 * c}%)`;
}

const view = {
  id: 'molecules',
  title: 'Molecules',
  kind: 'molecules',
  plane: null,
  samples: [],

  async mount(panel) {
    const info = state.info;
    el('p', { class: 'lead' }, panel,
      `A SMILES VAE with a ${info.latent}-dimensional latent space. Every molecule maps to a Gaussian in it; its mean is a point on the plane below ` +
      '(the two leading principal directions of the test molecules\' means). Any point decodes to a SMILES, which may or may not be a molecule.');
    const grid = el('div', { class: 'mol-grid' }, panel);

    const draw = el('section', { class: 'card' }, grid);
    el('h3', {}, draw, 'Draw a molecule');
    const row = el('div', { class: 'row' }, draw);
    const input = el('input', { id: 'mol-smiles', type: 'text', value: 'CC(=O)Nc1ccc(O)cc1', 'aria-label': 'SMILES', size: 34 }, row);
    const encodeButton = el('button', { id: 'mol-encode', type: 'button' }, row, 'Encode');
    const pair = el('div', { class: 'pair' }, draw);
    const inBox = el('figure', { id: 'mol-input', class: 'structure' }, pair);
    const outBox = el('figure', { id: 'mol-decoded', class: 'structure' }, pair);
    const where = el('p', { id: 'mol-point', class: 'muted' }, draw);

    const plane = el('section', { class: 'card' }, grid);
    el('h3', {}, plane, 'The latent plane');
    const controls = el('div', { class: 'row' }, plane);
    el('label', { for: 'mol-property' }, controls, 'colour by ');
    const property = el('select', { id: 'mol-property' }, controls);
    for (const p of info.properties) el('option', { value: p }, property, p);
    const sampleButton = el('button', { id: 'mol-sample', type: 'button' }, controls, 'Sample N(0, I)');
    const canvas = el('canvas', { id: 'mol-plane', width: SIZE, height: SIZE, 'aria-label': 'the latent plane' }, plane);
    const legend = el('p', { id: 'mol-legend', class: 'muted' }, plane);
    const hover = el('figure', { id: 'mol-hover', class: 'structure' }, plane);
    el('div', { class: 'muted' }, hover, 'Hover over a prior sample (white) to see its structure; click anywhere to decode that point.');

    const walk = el('section', { class: 'card' }, grid);
    el('h3', {}, walk, 'Walk between two molecules');
    const wrow = el('div', { class: 'row' }, walk);
    const from = el('input', { id: 'mol-from', type: 'text', value: 'CCOc1ccccc1', 'aria-label': 'from SMILES', size: 18 }, wrow);
    const to = el('input', { id: 'mol-to', type: 'text', value: 'c1ccc2ccccc2c1', 'aria-label': 'to SMILES', size: 18 }, wrow);
    const walkButton = el('button', { id: 'mol-walk-go', type: 'button' }, wrow, 'Walk');
    const strip = el('div', { id: 'mol-walk', class: 'strip' }, walk);

    const opt = el('section', { class: 'card' }, grid);
    el('h3', {}, opt, 'Optimize a property');
    const orow = el('div', { class: 'row' }, opt);
    const optProperty = el('select', { id: 'mol-opt-property' }, orow);
    for (const p of info.properties) el('option', { value: p }, optProperty, p);
    const optButton = el('button', { id: 'mol-opt-go', type: 'button' }, orow, 'Optimize from the drawn molecule');
    const optCaption = el('p', { id: 'mol-opt-caption', class: 'muted' }, opt);
    const trajectory = el('div', { id: 'mol-opt', class: 'strip' }, opt);

    const ctx = canvas.getContext('2d');
    let bounds = null; // [xmin, xmax, ymin, ymax] of the plane's points
    const toPx = (p) => [((p[0] - bounds[0]) / (bounds[1] - bounds[0])) * SIZE, SIZE - ((p[1] - bounds[2]) / (bounds[3] - bounds[2])) * SIZE];
    const fromPx = (x, y) => [bounds[0] + (x / SIZE) * (bounds[1] - bounds[0]), bounds[2] + ((SIZE - y) / SIZE) * (bounds[3] - bounds[2])];
    let marker = null;

    const redraw = () => {
      if (!this.plane) return;
      const pts = this.plane.points;
      const values = pts.map((p) => p[2]);
      const lo = Math.min(...values), hi = Math.max(...values);
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, SIZE, SIZE);
      for (const p of pts) {
        const [x, y] = toPx(p);
        ctx.fillStyle = colour((p[2] - lo) / (hi - lo || 1));
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
      for (const s of this.samples) {
        const [x, y] = toPx(s.point);
        ctx.beginPath();
        ctx.arc(x, y, 5, 0, 2 * Math.PI);
        ctx.fillStyle = s.valid ? '#fff' : '#f3c6c6';
        ctx.fill();
        ctx.strokeStyle = '#111';
        ctx.stroke();
      }
      if (marker) {
        const [x, y] = toPx(marker);
        ctx.strokeStyle = '#d00';
        ctx.lineWidth = 2;
        ctx.strokeRect(x - 6, y - 6, 12, 12);
        ctx.lineWidth = 1;
      }
      legend.textContent = `${pts.length} test molecules coloured by ${this.plane.property}: ${fmt(lo)} (blue) to ${fmt(hi)} (yellow)` +
        (this.samples.length ? `; ${this.samples.length} prior samples, ${this.samples.filter((s) => s.valid).length} valid` : '');
      canvas.dataset.points = String(pts.length);
      canvas.dataset.samples = String(this.samples.length);
      canvas.dataset.sampleAt = JSON.stringify(this.samples.map((s) => toPx(s.point).map((v) => v / SIZE)));
    };

    const loadPlane = async () => {
      const reply = await guarded(() => get(`/api/molecules/plane?property=${encodeURIComponent(property.value)}&limit=2000`));
      if (!reply) return;
      this.plane = reply;
      fit();
      redraw();
    };
    // The view spans the test molecules and the prior samples (a narrow posterior's samples land far out).
    const fit = () => {
      const all = this.plane.points.concat(this.samples.map((s) => s.point));
      const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
      const pad = 0.05;
      const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      bounds = [x0 - pad * (x1 - x0), x1 + pad * (x1 - x0), y0 - pad * (y1 - y0), y1 + pad * (y1 - y0)];
    };

    const encode = async () => {
      const reply = await guarded(() => post('/api/molecules/encode', { smiles: input.value.trim() }));
      if (!reply) return;
      structure(inBox, reply, 'drawn');
      structure(outBox, reply.decoded, reply.decoded.valid ? (reply.decoded.smiles === reply.smiles ? 'decoded: the same molecule' : 'decoded: another molecule') : 'decoded: not a valid SMILES');
      where.textContent = `mu on the plane: (${fmt(reply.point[0])}, ${fmt(reply.point[1])})` +
        (reply.predicted ? `; the head predicts ${info.properties.map((p, k) => `${p} ${fmt(reply.predicted[k])}`).join(', ')}` : '');
      marker = reply.point;
      redraw();
    };

    encodeButton.addEventListener('click', encode);
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') encode(); });
    property.addEventListener('change', loadPlane);
    sampleButton.addEventListener('click', async () => {
      const reply = await guarded(() => post('/api/molecules/sample', { n: 12, seed: Math.floor(Math.random() * 1e9) }));
      if (!reply) return;
      this.samples = reply.samples;
      if (this.plane) fit();
      redraw();
    });
    canvas.addEventListener('mousemove', (e) => {
      if (!bounds || !this.samples.length) return;
      const r = canvas.getBoundingClientRect();
      const x = ((e.clientX - r.left) / r.width) * SIZE, y = ((e.clientY - r.top) / r.height) * SIZE;
      let best = null, bestD = 10;
      for (const s of this.samples) {
        const [sx, sy] = toPx(s.point);
        const d = Math.hypot(sx - x, sy - y);
        if (d < bestD) [best, bestD] = [s, d];
      }
      if (best) structure(hover, best, 'a prior sample');
    });
    canvas.addEventListener('click', async (e) => {
      if (!bounds) return;
      const r = canvas.getBoundingClientRect();
      const [px, py] = fromPx(((e.clientX - r.left) / r.width) * SIZE, ((e.clientY - r.top) / r.height) * SIZE);
      const reply = await guarded(() => post('/api/molecules/decode', { x: px, y: py }));
      if (!reply) return;
      structure(hover, reply, `decoded at (${fmt(px)}, ${fmt(py)})`);
      marker = [px, py];
      redraw();
    });
    walkButton.addEventListener('click', async () => {
      const reply = await guarded(() => post('/api/molecules/walk', { from: from.value.trim(), to: to.value.trim(), steps: 8 }));
      if (!reply) return;
      strip.replaceChildren();
      for (const s of reply.steps) structure(el('figure', { class: 'structure small' }, strip), s, `t = ${fmt(s.t)}`);
      strip.dataset.steps = String(reply.steps.length);
    });
    optButton.addEventListener('click', async () => {
      optCaption.textContent = 'optimizing…';
      const reply = await guarded(() => post('/api/molecules/optimize', { smiles: input.value.trim(), property: optProperty.value, steps: 20, similarity: 0.4 }));
      if (!reply) { optCaption.textContent = ''; return; }
      trajectory.replaceChildren();
      const seen = new Set();
      for (const s of reply.path) {
        if (seen.has(s.smiles)) continue; // each distinct decoding once, in the order it appeared
        seen.add(s.smiles);
        structure(el('figure', { class: 'structure small' }, trajectory), s,
          s.valid ? `step ${s.step}: ${reply.property} ${fmt(s.value)}, similarity ${fmt(s.similarity)}` : `step ${s.step}: invalid`);
      }
      trajectory.dataset.steps = String(reply.path.length);
      optCaption.textContent = `${reply.property} of the seed ${fmt(reply.seed_value)}; ` +
        (reply.best ? `best with similarity >= 0.4: ${reply.best.smiles} (${fmt(reply.best_value)}, similarity ${fmt(reply.best_similarity)})` : 'no better molecule with similarity >= 0.4 on this path');
    });

    await Promise.all([loadPlane(), encode()]);
    return true;
  },
  show() {},
  hide() {},
};

export default view;
