// Choosing an input: a page of test images (with labels), or an uploaded PNG.
import { get, guarded, onImageUpload } from './api.js';
import { decodeImages, paint, el } from './draw.js';
import { state, setInput, onInput, className } from './state.js';

const PER_PAGE = 24;
const pickers = [];

function markSelection() {
  for (const p of pickers) {
    for (const b of p.querySelectorAll('.thumbs button')) {
      b.setAttribute('aria-pressed', String(state.input && state.input.index === Number(b.dataset.index)));
    }
    const label = p.querySelector('.chosen');
    if (!state.input) label.textContent = '';
    else if (state.input.index !== undefined) {
      label.textContent = `test image ${state.input.index}${state.encoded.label !== undefined ? ` · ${className(state.encoded.label)}` : ''}`;
    } else label.textContent = `uploaded ${state.input.name}`;
  }
}

async function showPage(picker, offset) {
  const reply = await guarded(() => get(`/api/items?offset=${offset}&limit=${PER_PAGE}`));
  if (!reply) return;
  picker.dataset.offset = String(offset);
  const thumbs = picker.querySelector('.thumbs');
  thumbs.replaceChildren();
  decodeImages(reply.images).forEach((image, k) => {
    const index = offset + k;
    const name = reply.labels ? className(reply.labels[k]) : '';
    const b = el('button', { type: 'button', 'data-index': String(index), 'aria-label': `Test image ${index}${name ? `: ${name}` : ''}`, title: `#${index} ${name}` }, thumbs);
    const c = el('canvas', { width: String(image.width), height: String(image.height) }, b);
    paint(c, image);
    b.addEventListener('click', () => setInput({ index }));
  });
  picker.querySelector('.page').textContent = `${offset + 1}–${offset + reply.count} of ${reply.total}`;
  markSelection();
}

/** Builds a picker inside `container` (an element with class input-picker). */
export function createInputPicker(container) {
  container.replaceChildren();
  el('h3', {}, container, 'Input');
  el('div', { class: 'thumbs', role: 'group', 'aria-label': 'Test images' }, container);
  const pager = el('div', { class: 'pager' }, container);
  const prev = el('button', { type: 'button', 'aria-label': 'Previous test images' }, pager, '‹');
  el('span', { class: 'page' }, pager);
  const next = el('button', { type: 'button', 'aria-label': 'Next test images' }, pager, '›');
  const upload = el('label', { class: 'upload' }, pager, 'Upload ');
  const file = el('input', { type: 'file', accept: 'image/png,image/jpeg,image/bmp', 'aria-label': 'Upload an image' }, upload);
  el('p', { class: 'chosen hint' }, container);
  const total = state.info.test_size;
  prev.addEventListener('click', () => showPage(container, Math.max(0, Number(container.dataset.offset) - PER_PAGE)));
  next.addEventListener('click', () => {
    const o = Number(container.dataset.offset) + PER_PAGE;
    if (o < total) showPage(container, o);
  });
  onImageUpload(file, (png, name) => setInput({ png, name }));
  pickers.push(container);
  showPage(container, 0);
}

onInput(markSelection);
