// The explorer in a real browser: playwright-core driving Debian's chromium against `latent serve`.
// Each test does what a person would and checks what they would see.
//   LATENT_URL          the explorer's address (run.sh starts the server)
//   LATENT_SCREENSHOTS  folder for one screenshot per view
//   LATENT_UPLOAD_PNG   a PNG to upload (LATENT_UPLOAD_PNG_B: another)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.LATENT_URL;
const shots = process.env.LATENT_SCREENSHOTS;
const uploadPng = process.env.LATENT_UPLOAD_PNG;
const uploadPngB = process.env.LATENT_UPLOAD_PNG_B;
let browser, page;
const pageErrors = [];

before(async () => {
  assert.ok(url, 'LATENT_URL must name the server');
  fs.mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30000 });
});

after(async () => {
  if (browser) await browser.close();
});

const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

// Pixels of a canvas scaled down to the decoder's size (nearest neighbour): canvases of different
// display sizes showing the same decoding compare equal.
const pixelsOf = (selector, size) =>
  page.$eval(selector, (c, n) => {
    const small = document.createElement('canvas');
    small.width = n;
    small.height = n;
    const ctx = small.getContext('2d');
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(c, 0, 0, n, n);
    return Array.from(ctx.getImageData(0, 0, n, n).data);
  }, size);

const maxDiff = (a, b) => a.reduce((m, v, k) => Math.max(m, Math.abs(v - b[k])), 0);
const number = async (selector) => parseFloat(await page.textContent(selector));

async function openTab(name) {
  await page.click(`#tab-${name}`);
  await page.waitForSelector(`#view-${name}:not([hidden])`);
}

test('the page loads the model and draws the 20x20 manifold', async () => {
  assert.match(await page.textContent('#model-summary'), /mlp_vae .* test ELBO -\d+\.\d+ nats/);
  assert.equal(await page.getAttribute('#plane-grid', 'data-cells'), '400');
  assert.equal(await page.isVisible('#error'), false);
  const pixels = await pixelsOf('#plane-grid', 20);
  assert.ok(new Set(pixels).size > 10, 'the grid is not blank');
});

test('"Sample N(0, I)" shows new decodings that differ from each other, marked on the plane', async () => {
  await page.click('#sample-prior');
  await page.waitForFunction(() => document.querySelectorAll('.sample-image').length === 8);
  const images = await page.$$eval('.sample-image', (cs) => cs.map((c) => c.toDataURL()));
  assert.equal(new Set(images).size, 8, 'eight different images');
  assert.equal(await page.locator('#plane-overlay .prior-sample').count(), 8);
  const before = images[0];
  await page.click('#sample-prior');
  await page.waitForFunction((old) => document.querySelector('.sample-image').toDataURL() !== old, before);
  await page.hover('#plane', { position: { x: 100, y: 120 } });
  await page.waitForFunction(() => document.getElementById('plane-preview-text').textContent.includes('z = ['));
  await shot('manifold');
});

test('the plane can use two latent axes, with the other coordinates at a test image', async () => {
  await page.selectOption('#plane-kind', 'axes');
  await page.selectOption('#plane-axis-j', '2');
  await page.waitForFunction(() => document.getElementById('plane-caption').textContent.includes('z₂'));
  await page.selectOption('#plane-origin', 'item');
  await page.waitForFunction(() => document.getElementById('plane-caption').textContent.includes('test image 0'));
  await page.selectOption('#plane-kind', 'pca');
  await page.selectOption('#plane-origin', 'zero');
});

const ellipse = async () => {
  const mu = (await page.getAttribute('#kl-plot-q', 'data-mu')).split(',').map(Number);
  const sigma = (await page.getAttribute('#kl-plot-q', 'data-sigma')).split(',').map(Number);
  // How far the 1-sigma ellipse is from the prior's unit circle.
  return Math.hypot(mu[0], mu[1]) + Math.abs(sigma[0] - 1) + Math.abs(sigma[1] - 1);
};

test('"Improve KL" lowers the KL and pulls the ellipse toward the unit circle; Reset undoes it', async () => {
  await openTab('kl');
  await page.waitForFunction(() => document.getElementById('kl-total').textContent.includes('nats'));
  const kl0 = await number('#kl-total');
  const far0 = await ellipse();
  const recon0 = await number('#kl-recon');
  await page.selectOption('#kl-steps', '100');
  await page.click('#kl-improve');
  await page.waitForSelector('#view-kl[data-state="done"]', { timeout: 20000 });
  const kl1 = await number('#kl-total');
  const far1 = await ellipse();
  assert.ok(kl1 < kl0, `KL went from ${kl0} to ${kl1}`);
  assert.ok(far1 < far0, `distance to the prior went from ${far0} to ${far1}`);
  assert.ok((await number('#kl-recon')) > recon0, 'the reconstruction gets worse as q joins the prior');
  assert.equal(await page.textContent('#kl-step'), '100');
  await shot('kl');
  await page.click('#kl-reset');
  assert.equal(await number('#kl-total'), kl0);
});

test('a hidden view runs no timers: leaving "Improve KL" mid-animation shows its last step at once', async () => {
  await openTab('kl');
  await page.click('#kl-reset');
  await page.selectOption('#kl-steps', '200');
  await page.click('#kl-improve');
  await page.waitForFunction(() => Number(document.getElementById('kl-step').textContent) > 0, null, { timeout: 20000 });
  const during = Number(await page.textContent('#kl-step'));
  await openTab('manifold');
  assert.equal(await page.getAttribute('#view-kl', 'data-state'), 'done');
  assert.equal(await page.textContent('#kl-step'), '200', `the animation was at step ${during} when the tab was left`);
  await page.waitForTimeout(300);
  assert.equal(await page.textContent('#kl-step'), '200');
  await openTab('kl');
  await page.click('#kl-reset');
});

test('every view has one tab and one panel, built from the views list', async () => {
  const tabs = await page.$$eval('[role="tab"]', (ts) => ts.map((t) => [t.id, t.getAttribute('aria-controls'), t.textContent]));
  assert.deepEqual(tabs.map((t) => t[0]), ['tab-manifold', 'tab-kl', 'tab-reparam', 'tab-walk', 'tab-training', 'tab-train', 'tab-anomaly', 'tab-sd']);
  for (const [id, panel, title] of tabs) {
    assert.ok(title.length > 0, `${id} has a title`);
    assert.equal(await page.getAttribute(`#${panel}`, 'aria-labelledby'), id);
  }
  assert.equal(await page.$$eval('[role="tabpanel"]', (ps) => ps.length), tabs.length);
});

test('uploading a PNG encodes it', async () => {
  await page.setInputFiles('#view-kl .input-picker input[type="file"]', uploadPng);
  await page.waitForFunction(() => document.querySelector('#view-kl .chosen').textContent.startsWith('uploaded'));
  assert.ok((await number('#kl-total')) > 0);
});

test('an API error shows a message, not a blank page', async () => {
  await page.setInputFiles('#view-kl .input-picker input[type="file"]', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('not an image at all') });
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error-text'), /uploaded image: not a readable PNG, JPEG or BMP image/);
  await page.click('#error-close');
  assert.equal(await page.isVisible('#error'), false);
  assert.ok(await page.isVisible('#kl-plot'), 'the view is still there');
});

test('reparameterization draws accumulate and show eps, sigma*eps and z', async () => {
  await page.click('#view-kl .thumbs button[data-index="3"]');
  await openTab('reparam');
  // A frame's timestamp is when the frame began, which can be before the draw started: make it always so.
  await page.evaluate(() => {
    window.realRequestAnimationFrame = window.requestAnimationFrame;
    window.requestAnimationFrame = (tick) => window.realRequestAnimationFrame(() => tick(performance.now() - 50));
  });
  for (let k = 0; k < 3; k++) {
    await page.click('#rp-step');
    await page.waitForFunction((n) => document.getElementById('rp-count').textContent === `${n} draw${n === 1 ? '' : 's'}`, k + 1);
  }
  assert.equal(await page.locator('#rp-plot .draw').count(), 3);
  const rows = await page.$$eval('#rp-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const value = (name) => rows.find((r) => r[0].startsWith(name)).slice(1).map(Number);
  const [eps, sigma, mu, z] = [value('ε'), value('σ'), value('μ'), value('z =')];
  for (const k of [0, 1]) assert.ok(Math.abs(mu[k] + sigma[k] * eps[k] - z[k]) < 2e-3, 'z = mu + sigma * eps');
  assert.deepEqual(value('∂z/∂μ'), [1, 1]);
  assert.deepEqual(value('∂z/∂σ'), eps);
  await page.evaluate(() => { window.requestAnimationFrame = window.realRequestAnimationFrame; });
  await shot('reparameterization');
});

test('the walk shows the endpoints at t = 0 and t = 1, and exports its strip', async () => {
  await openTab('walk');
  await page.waitForFunction(() => document.getElementById('walk-strip').dataset.steps === '10');
  await page.locator('#walk-t').fill('1');
  await page.waitForFunction(() => document.getElementById('walk-now').dataset.t === '1');
  assert.ok(maxDiff(await pixelsOf('#walk-now', 28), await pixelsOf('#walk-b', 28)) <= 1, 't = 1 is B');
  await page.locator('#walk-t').fill('0');
  await page.waitForFunction(() => document.getElementById('walk-now').dataset.t === '0');
  assert.ok(maxDiff(await pixelsOf('#walk-now', 28), await pixelsOf('#walk-a', 28)) <= 1, 't = 0 is A');
  assert.ok(maxDiff(await pixelsOf('#walk-a', 28), await pixelsOf('#walk-b', 28)) > 30, 'A and B differ');
  await page.check('input[name="walk-method"][value="slerp"]');
  await page.fill('#walk-steps', '6');
  await page.press('#walk-steps', 'Enter');
  await page.waitForFunction(() => document.getElementById('walk-strip').dataset.steps === '6');
  const download = page.waitForEvent('download');
  await page.click('#walk-export');
  const file = await (await download).path();
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.subarray(1, 4).toString(), 'PNG');
  await shot('walk');
});

test('the training view draws ELBO, reconstruction and KL per epoch with axes', async () => {
  await openTab('training');
  await page.waitForSelector('#charts .chart svg path.test');
  assert.equal(await page.locator('#charts .chart').count(), 3);
  assert.match(await page.textContent('#charts'), /nats per example/);
  await shot('training');
});

test('the anomaly view shows the score histogram, a threshold slider with its FPR, and the top anomalies', async () => {
  await openTab('anomaly');
  await page.waitForSelector('#view-anomaly[data-ready="true"]', { timeout: 60000 });
  assert.ok((await page.locator('#an-histogram rect.bar').count()) === 60);
  const fprAt = async (q) => {
    await page.$eval('#an-threshold', (el, v) => {
      el.value = String(v);
      el.dispatchEvent(new Event('input'));
    }, q);
    return parseFloat(await page.getAttribute('#an-readout', 'data-fpr'));
  };
  // The slider sits on quantiles of the test split: at the 95th percentile about 5% is above it.
  const f95 = await fprAt(950), f50 = await fprAt(500), f99 = await fprAt(990);
  assert.ok(Math.abs(f95 - 0.05) < 0.01, `FPR at the 95th percentile: ${f95}`);
  assert.ok(f50 > f95 && f95 > f99, `FPR falls as the threshold rises: ${f50}, ${f95}, ${f99}`);
  assert.match(await page.textContent('#an-readout'), /flags \d+\.\d% of the test split/);
  assert.equal(await page.locator('#an-top figure').count(), 12);
  const input = await pixelsOf('#an-top figure:first-child canvas:first-child', 8);
  const map = await pixelsOf('#an-top figure:first-child canvas.errmap', 8);
  assert.ok(new Set(input).size > 3 && new Set(map).size > 3, 'the top anomaly and its error map are drawn');
  await page.selectOption('#an-score', 'recon_error');
  await page.waitForFunction(() => document.getElementById('an-readout').textContent.length > 0 && document.querySelector('#an-histogram svg').getAttribute('aria-label').includes('recon_error'));
  await shot('anomaly');
});

test('the SD latents view shows two images\' latent channels and decodings, and walks between them', async () => {
  await openTab('sd');
  assert.match(await page.textContent('#sd-about'), /AutoencoderKL .* 64×64 RGB ↔ 4×32×32 latents, scaling factor 0\.5/);
  await page.setInputFiles('#sd-file-a', uploadPng);
  await page.waitForFunction(() => document.querySelectorAll('.sd-image[data-end="a"] .sd-channels canvas').length === 4);
  await page.setInputFiles('#sd-file-b', uploadPngB);
  await page.waitForFunction(() => document.querySelectorAll('.sd-image[data-end="b"] .sd-channels canvas').length === 4);
  assert.match(await page.textContent('.sd-image[data-end="a"] .sd-decoded-caption'), /PSNR -?\d+\.\d dB/);
  const channels = await page.$$eval('.sd-image[data-end="a"] .sd-channels canvas', (cs) => cs.map((c) => c.toDataURL()));
  assert.equal(new Set(channels).size, 4, 'four different channels');
  const decodedA = await pixelsOf('.sd-image[data-end="a"] .sd-decoded', 64);
  const decodedB = await pixelsOf('.sd-image[data-end="b"] .sd-decoded', 64);
  assert.ok(maxDiff(decodedA, decodedB) > 30, 'A and B decode differently');
  await page.fill('#sd-steps', '5');
  await page.click('#sd-walk');
  await page.waitForFunction(() => document.querySelectorAll('#sd-strip canvas').length === 5);
  // The ends of the walk are the two images' own decodings (their latents travel as 4-decimal JSON).
  assert.ok(maxDiff(await pixelsOf('#sd-now', 64), decodedA) <= 2, 't = 0 is A');
  await page.locator('#sd-t').fill('4');
  await page.waitForFunction(() => document.getElementById('sd-now-caption').textContent === 't = 1.00');
  assert.ok(maxDiff(await pixelsOf('#sd-now', 64), decodedB) <= 2, 't = 1 is B');
  await page.locator('#sd-t').fill('2');
  await page.waitForFunction(() => document.getElementById('sd-now-caption').textContent === 't = 0.50');
  const middle = await pixelsOf('#sd-now', 64);
  assert.ok(maxDiff(middle, decodedA) > 5 && maxDiff(middle, decodedB) > 5, 'the middle is neither end');
  await shot('sd-latents');
});

test('every view is reachable from the keyboard', async () => {
  await page.focus('#tab-training');
  await page.keyboard.press('Home');
  assert.equal(await page.getAttribute('#tab-manifold', 'aria-selected'), 'true');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getAttribute('#tab-kl', 'aria-selected'), 'true');
  await page.keyboard.press('ArrowLeft');
  await page.focus('#plane');
  const at = async () => (await page.textContent('#plane-preview-text')).match(/plane \(([-\d.]+), ([-\d.]+)\)/).slice(1).map(Number);
  const [u0, v0] = await at();
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowDown');
  await page.waitForFunction((old) => !document.getElementById('plane-preview-text').textContent.startsWith(old), `plane (${u0.toFixed(2)}, ${v0.toFixed(2)})`);
  await page.waitForTimeout(100);
  const [u1, v1] = await at();
  assert.ok(Math.abs(u1 - (u0 - 0.3)) < 0.011 && Math.abs(v1 - (v0 - 0.3)) < 0.011, `cursor moved from ${u0}, ${v0} to ${u1}, ${v1}`);
  await page.keyboard.press('Enter');
  await openTab('walk');
  await page.click('.endpoint[data-end="b"] button:has-text("Clicked plane point")');
  await page.waitForFunction(() => document.querySelector('.endpoint[data-end="b"] .chosen').textContent.includes('point on the plane'));
});

test('a narrow window has no horizontal scrolling', async () => {
  await page.setViewportSize({ width: 420, height: 800 });
  await page.waitForTimeout(200);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 420, `page is ${width}px wide`);
  await shot('manifold-narrow');
  await page.setViewportSize({ width: 1280, height: 800 });
  assert.deepEqual(pageErrors, []);
});

test('the Train tab trains a 2-D model live: the curve grows, the scatter moves, pause holds it, stop keeps a checkpoint', async () => {
  await openTab('train');
  await page.fill('#train-limit', '3000');
  await page.fill('#train-epochs-n', '40');
  await page.fill('#train-batch', '50');
  await page.fill('#train-snap', '20');
  await page.click('#train-start');
  await page.waitForSelector('#train-state[data-state="running"]');
  // Two redraws of the scatter: the test images' means have moved between them.
  await page.waitForFunction(() => Number(document.getElementById('train-scatter').dataset.step || 0) >= 20, null, { timeout: 60000 });
  const first = await page.getAttribute('#train-scatter', 'data-first');
  const step = Number(await page.getAttribute('#train-scatter', 'data-step'));
  await page.waitForFunction((s) => Number(document.getElementById('train-scatter').dataset.step) > s, step, { timeout: 60000 });
  assert.notEqual(await page.getAttribute('#train-scatter', 'data-first'), first, 'the scatter changed between two redraws');
  const points = Number(await page.getAttribute('#train-curve', 'data-points'));
  assert.ok(points >= 20, `the curve has ${points} points`);
  await page.waitForFunction((p) => Number(document.getElementById('train-curve').dataset.points) > p, points, { timeout: 60000 });
  await shot('train');
  // Pause holds the run where it is; Resume goes on.
  await page.click('#train-pause');
  await page.waitForSelector('#train-state[data-state="paused"]');
  const held = await page.textContent('#train-progress');
  await page.waitForTimeout(600);
  assert.equal(await page.textContent('#train-progress'), held, 'no steps while paused');
  await page.click('#train-pause');
  await page.waitForSelector('#train-state[data-state="running"]');
  await page.waitForFunction((t) => document.getElementById('train-progress').textContent !== t, held, { timeout: 60000 });
  // Stop keeps the checkpoint.
  await page.click('#train-stop');
  await page.waitForSelector('#train-state[data-state="stopped"]', { timeout: 60000 });
  assert.match(await page.textContent('#train-state'), /checkpoint .*model\.safetensors/);
  assert.equal(await page.isDisabled('#train-start'), false);
  // The run becomes the model every tab shows (last: the other tests expect the served model).
  await page.click('#train-use');
  await page.waitForFunction(() => document.body.dataset.ready === 'true' && /784-400-2,/.test(document.getElementById('model-summary').textContent), null, { timeout: 60000 });
  assert.equal(await page.getAttribute('#tab-manifold', 'aria-selected'), 'true');
});
