// What the views share: the model's info, and the chosen input with its encoding.
import { post, guarded } from './api.js';

const listeners = new Set();

export const state = {
  info: null,
  input: null, // {index} or {png, name}
  encoded: null, // the /api/encode reply for `input`
  planePoint: null, // a z clicked on the manifold (for the walk)
};

export function onInput(fn) {
  listeners.add(fn);
}

/** Chooses the input every view works on, and encodes it. */
export async function setInput(input) {
  const encoded = await guarded(() => post('/api/encode', input));
  if (!encoded) return;
  state.input = input;
  state.encoded = encoded;
  for (const fn of listeners) fn(encoded);
}

export function className(label) {
  const classes = state.info.classes || [];
  return label === undefined || label === null ? '' : classes[label] || `class ${label}`;
}

/** The two dimensions with the most KL for the current input: where q differs most from the prior. */
export function topDims(klPerDim) {
  const order = klPerDim.map((k, i) => [k, i]).sort((a, b) => b[0] - a[0]);
  return [order[0][1], order[1][1]];
}

/** The part of an input the API takes ({index} or {png}). */
export function inputOnly(input) {
  return input.index !== undefined ? { index: input.index } : { png: input.png };
}
