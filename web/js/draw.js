// Images from the API onto canvases, colours, and small SVG helpers.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Tableau 10: distinct, colour-blind-aware class colours.
export const CLASS_COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export const classColor = (label) => CLASS_COLORS[((label % 10) + 10) % 10];

/** {"shape": [N, C, H, W], "pixels": base64} -> [{width, height, rgba: Uint8ClampedArray}] */
export function decodeImages(images) {
  const [n, c, h, w] = images.shape;
  const raw = atob(images.pixels);
  const out = [];
  for (let i = 0; i < n; i++) {
    const rgba = new Uint8ClampedArray(w * h * 4);
    const base = i * c * h * w;
    for (let p = 0; p < h * w; p++) {
      for (let k = 0; k < 3; k++) rgba[p * 4 + k] = raw.charCodeAt(base + (c === 3 ? k * h * w : 0) + p);
      rgba[p * 4 + 3] = 255;
    }
    out.push({ width: w, height: h, rgba });
  }
  return out;
}

function bitmap(image) {
  const c = document.createElement('canvas');
  c.width = image.width;
  c.height = image.height;
  c.getContext('2d').putImageData(new ImageData(image.rgba, image.width, image.height), 0, 0);
  return c;
}

/** Paints one image scaled to fill `canvas` (or the rectangle x, y, w, h of it), without smoothing. */
export function paint(canvas, image, x = 0, y = 0, w = canvas.width, h = canvas.height) {
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap(image), x, y, w, h);
}

export function svg(tag, attrs = {}, parent = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

export function el(tag, attrs = {}, parent = null, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

export const fmt = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

/** Fills a <select> with the latent dimensions z_0 .. z_{d-1}. */
export function fillDimSelect(select, d, value) {
  select.replaceChildren();
  for (let i = 0; i < d; i++) el('option', { value: String(i) }, select, `z${sub(i)}`);
  select.value = String(value);
}

const SUBSCRIPTS = '₀₁₂₃₄₅₆₇₈₉';
export const sub = (i) => String(i).split('').map((c) => SUBSCRIPTS[Number(c)]).join('');

/** eps ~ N(0, 1) by Box-Muller. */
export function gaussian() {
  let u = 0;
  while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}
