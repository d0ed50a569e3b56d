// The explorer's JSON API, with every failure shown to the person as a message.

export class ApiError extends Error {}

let errorTimer = null;

export function showError(message) {
  const box = document.getElementById('error');
  document.getElementById('error-text').textContent = message;
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { box.hidden = true; }, 12000);
}

export function clearError() {
  document.getElementById('error').hidden = true;
}

async function request(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new ApiError(`cannot reach the latent server (${e.message}); is 'latent serve' still running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    throw new ApiError(`${path}: the server answered HTTP ${response.status} without JSON`);
  }
  if (!response.ok) throw new ApiError(body && body.error ? body.error : `${path}: HTTP ${response.status}`);
  return body;
}

export const get = (path) => request(path);

export const post = (path, body) =>
  request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

/** Runs `fn`; shows its error instead of letting it vanish in the console. */
export async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    showError(e instanceof ApiError ? e.message : `unexpected error: ${e.message}`);
    return undefined;
  }
}

/** Calls `fn(base64, fileName)` with each image chosen in the file input (for {"png": ...}). */
export function onImageUpload(input, fn) {
  input.addEventListener('change', async () => {
    const file = input.files[0];
    if (!file) return;
    const png = await guarded(() => new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
      reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
      reader.readAsDataURL(file);
    }));
    input.value = '';
    if (png !== undefined) await fn(png, file.name);
  });
}
