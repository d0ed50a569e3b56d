// A plot of two latent dimensions: the prior N(0, I) and a diagonal Gaussian q, at 1 and 2 sigma.
import { svg, sub } from './draw.js';

const SIZE = 480;
const PAD = 34;

export function createGaussPlot(root) {
  root.replaceChildren();
  const layers = {
    grid: svg('g', { class: 'grid' }, root),
    axis: svg('g', { class: 'axis' }, root),
    prior: svg('g', {}, root),
    q: svg('g', {}, root),
    draws: svg('g', {}, root),
    top: svg('g', {}, root),
  };
  const plot = { extent: 4, layers, dims: [0, 1] };
  const scale = () => (SIZE - 2 * PAD) / (2 * plot.extent);
  plot.x = (u) => PAD + (u + plot.extent) * scale();
  plot.y = (v) => SIZE - PAD - (v + plot.extent) * scale();
  plot.r = (s) => s * scale();

  plot.frame = (extent, dims) => {
    plot.extent = extent;
    plot.dims = dims;
    for (const k of ['grid', 'axis', 'prior']) layers[k].replaceChildren();
    for (let t = -Math.floor(extent); t <= extent; t++) {
      svg('line', { x1: plot.x(t), x2: plot.x(t), y1: plot.y(-extent), y2: plot.y(extent) }, layers.grid);
      svg('line', { y1: plot.y(t), y2: plot.y(t), x1: plot.x(-extent), x2: plot.x(extent) }, layers.grid);
      svg('text', { x: plot.x(t), y: SIZE - PAD + 16, 'text-anchor': 'middle' }, layers.axis).textContent = String(t);
      svg('text', { x: PAD - 8, y: plot.y(t) + 4, 'text-anchor': 'end' }, layers.axis).textContent = String(t);
    }
    svg('line', { x1: plot.x(-extent), x2: plot.x(extent), y1: plot.y(0), y2: plot.y(0) }, layers.axis);
    svg('line', { x1: plot.x(0), x2: plot.x(0), y1: plot.y(-extent), y2: plot.y(extent) }, layers.axis);
    svg('text', { x: SIZE - PAD, y: plot.y(0) - 6, 'text-anchor': 'end' }, layers.axis).textContent = `z${sub(dims[0])}`;
    svg('text', { x: plot.x(0) + 6, y: PAD - 6 }, layers.axis).textContent = `z${sub(dims[1])}`;
    for (const k of [1, 2]) svg('circle', { class: 'prior', cx: plot.x(0), cy: plot.y(0), r: plot.r(k) }, layers.prior);
  };

  /** Draws q = N(mu, diag(sigma^2)) in the shown dimensions; data-* attributes carry the values. */
  plot.setQ = (mu, sigma) => {
    layers.q.replaceChildren();
    svg('ellipse', { class: 'q2', cx: plot.x(mu[0]), cy: plot.y(mu[1]), rx: plot.r(2 * sigma[0]), ry: plot.r(2 * sigma[1]) }, layers.q);
    svg('ellipse', {
      class: 'q1', id: `${root.id}-q`, cx: plot.x(mu[0]), cy: plot.y(mu[1]), rx: plot.r(sigma[0]), ry: plot.r(sigma[1]),
      'data-mu': `${mu[0]},${mu[1]}`, 'data-sigma': `${sigma[0]},${sigma[1]}`,
    }, layers.q);
    svg('circle', { class: 'mu', cx: plot.x(mu[0]), cy: plot.y(mu[1]), r: 3.5 }, layers.q);
  };

  /** The extent that holds the prior's and q's 2-sigma ellipses. */
  plot.fit = (mu, sigma) => Math.max(3, Math.ceil(Math.max(...mu.map((m, k) => Math.abs(m) + 2.2 * sigma[k])) * 2) / 2);
  return plot;
}
