// The Molecules view in a real browser (playwright-core driving Debian's chromium) against `latent
// serve` on a SMILES VAE: what a person would do on it and what they would see.
//   LATENT_URL          the explorer's address (run.sh starts the server)
//   LATENT_SCREENSHOTS  folder for the view's screenshot
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.LATENT_URL;
const shots = process.env.LATENT_SCREENSHOTS;
let browser, page;
const pageErrors = [];

before(async () => {
  assert.ok(url, 'LATENT_URL must name the server');
  fs.mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30000 });
});

after(async () => {
  if (browser) await browser.close();
});

// Each structure box shows either a drawing or says the SMILES is invalid.
const structureState = (selector) =>
  page.$eval(selector, (box) => ({
    invalid: box.classList.contains('invalid'),
    drawn: box.querySelector('.svg svg') !== null,
    text: box.querySelector('.svg').textContent,
    smiles: box.querySelector('.smiles').textContent,
  }));

test('a molecule model shows the Molecules tab only, with its summary', async () => {
  assert.match(await page.textContent('#model-summary'), /smiles_vae, latent 8, .* molecules \(\d+ test molecules\)/);
  assert.equal(await page.locator('nav.tabs [role=tab]').count(), 1);
  assert.equal(await page.isVisible('#view-molecules'), true);
  assert.equal(await page.isVisible('#error'), false);
});

test('drawing a molecule shows its structure, its place on the plane and its decoding (valid or marked invalid)', async () => {
  await page.fill('#mol-smiles', 'CCOc1ccccc1');
  await page.click('#mol-encode');
  await page.waitForFunction(() => document.querySelector('#mol-input .smiles').textContent === 'CCOc1ccccc1');
  const drawn = await structureState('#mol-input');
  assert.equal(drawn.drawn, true, 'the drawn molecule is depicted');
  assert.match(await page.textContent('#mol-input'), /logp -?\d/);
  const decoded = await structureState('#mol-decoded');
  assert.ok(decoded.drawn !== decoded.invalid, 'the decoding is either drawn or marked invalid');
  if (decoded.invalid) assert.equal(decoded.text, 'invalid SMILES');
  assert.match(await page.textContent('#mol-point'), /mu on the plane: \(-?\d.*\); the head predicts logp/);
});

test('a SMILES RDKit cannot read is an error message, not a crash', async () => {
  await page.fill('#mol-smiles', 'C1CC(');
  await page.click('#mol-encode');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error-text'), /is not a molecule RDKit can read/);
  await page.click('#error-close');
});

test('the plane holds the test molecules coloured by a property; prior samples appear and show structures on hover', async () => {
  const points = Number(await page.getAttribute('#mol-plane', 'data-points'));
  assert.ok(points > 5, `${points} test molecules on the plane`);
  await page.selectOption('#mol-property', 'qed');
  await page.waitForFunction(() => document.getElementById('mol-legend').textContent.includes('coloured by qed'));
  await page.click('#mol-sample');
  await page.waitForSelector('#mol-plane[data-samples="12"]');
  assert.match(await page.textContent('#mol-legend'), /12 prior samples, \d+ valid/);
  // Hover over each sample's marker until the hover box shows one.
  const box = await page.locator('#mol-plane').boundingBox();
  const hovered = await page.evaluate(() => document.querySelector('#mol-hover .smiles') !== null);
  assert.equal(hovered, false);
  const at = JSON.parse(await page.getAttribute('#mol-plane', 'data-sample-at'));  // each marker, as a fraction of the canvas
  assert.equal(at.length, 12);
  for (const [fx, fy] of at) assert.ok(fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1, 'every prior sample is on the plane');
  await page.mouse.move(box.x + at[0][0] * box.width, box.y + at[0][1] * box.height);
  await page.waitForFunction(() => /a prior sample/.test(document.getElementById('mol-hover').textContent));
  const hover = await structureState('#mol-hover');
  assert.ok(hover.drawn !== hover.invalid);
});

test('clicking the plane decodes that point', async () => {
  await page.click('#mol-plane', { position: { x: 30, y: 30 } });
  await page.waitForFunction(() => /decoded at \(/.test(document.getElementById('mol-hover').textContent));
});

test('a walk between two molecules shows every decoded step, invalid ones marked', async () => {
  await page.fill('#mol-from', 'CCO');
  await page.fill('#mol-to', 'c1ccccc1O');
  await page.click('#mol-walk-go');
  await page.waitForSelector('#mol-walk[data-steps="8"]');
  const steps = await page.$$eval('#mol-walk .structure', (boxes) =>
    boxes.map((b) => ({ invalid: b.classList.contains('invalid'), drawn: b.querySelector('.svg svg') !== null })));
  assert.equal(steps.length, 8);
  for (const s of steps) assert.ok(s.drawn !== s.invalid, 'each step drawn or marked invalid');
});

test('optimizing a property shows the trajectory of decodings from the drawn molecule', async () => {
  await page.fill('#mol-smiles', 'CC(=O)Nc1ccc(O)cc1');
  await page.click('#mol-encode');
  await page.waitForFunction(() => document.querySelector('#mol-input .smiles').textContent === 'CC(=O)Nc1ccc(O)cc1');
  await page.selectOption('#mol-opt-property', 'qed');
  await page.click('#mol-opt-go');
  await page.waitForSelector('#mol-opt[data-steps="20"]', { timeout: 30000 });
  assert.ok(await page.locator('#mol-opt .structure').count() >= 1);
  assert.match(await page.textContent('#mol-opt-caption'), /qed of the seed 0\.\d+/);
  await page.screenshot({ path: path.join(shots, 'molecules.png'), fullPage: true });
  assert.deepEqual(pageErrors, []);
});
