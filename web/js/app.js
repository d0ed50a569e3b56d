// The explorer page: builds a tab and a panel for every view (views/index.js), loads the model's
// description, mounts the views and tells each when it is shown or hidden.
import { get, guarded, clearError } from './api.js';
import { el, fmt } from './draw.js';
import { state, setInput } from './state.js';
import { views } from './views/index.js';

// One {view, tab, panel} per view of the model's kind (views/index.js: images, or molecules); the
// first is shown until the address names another.
function buildTabs(kind) {
  const nav = document.querySelector('nav.tabs');
  const main = document.querySelector('main');
  const entries = views.filter((view) => (view.kind || 'images') === kind).map((view) => {
    const tab = el('button', { role: 'tab', id: `tab-${view.id}`, 'aria-controls': `view-${view.id}` }, nav, view.title);
    const panel = el('section', { id: `view-${view.id}`, role: 'tabpanel', 'aria-labelledby': tab.id, class: 'view' }, main);
    tab.hidden = Boolean(view.optional);
    return { view, tab, panel, mounted: false };
  });
  let current = null;
  const select = (entry, focus) => {
    for (const e of entries) {
      const on = e === entry;
      e.tab.setAttribute('aria-selected', String(on));
      e.tab.tabIndex = on ? 0 : -1;
      e.panel.hidden = !on;
    }
    if (current && current !== entry && current.mounted) current.view.hide();
    current = entry;
    if (entry.mounted) entry.view.show();
    if (focus) entry.tab.focus();
    history.replaceState(null, '', `#${entry.view.id}`);
  };
  for (const entry of entries) {
    entry.tab.addEventListener('click', () => select(entry, false));
    entry.tab.addEventListener('keydown', (e) => {
      const shown = entries.filter((x) => !x.tab.hidden);
      const i = shown.indexOf(entry);
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: shown.length - 1 };
      if (e.key in moves) {
        e.preventDefault();
        select(shown[(moves[e.key] + shown.length) % shown.length], true);
      }
    });
  }
  select(entries.find((e) => `#${e.view.id}` === location.hash && !e.tab.hidden) || entries[0], false);
  return { entries, current: () => current };
}

function summary(info) {
  const m = info.model;
  if (info.kind === 'molecules') {
    const last = info.last_epoch;
    const elbo = last && typeof last.test_elbo === 'number' ? ` · test ELBO ${fmt(last.test_elbo)} nats after ${info.epochs} epoch${info.epochs === 1 ? '' : 's'}` : '';
    return `${m.type}, latent ${info.latent}, GRU ${m.decoder_layers}×${m.decoder_hidden} · molecules (${info.test_size} test molecules)${elbo}`;
  }
  const arch = m.type === 'mlp_vae' ? `${info.data_shape.reduce((a, b) => a * b, 1)}-${(m.hidden || []).join('-')}-${info.latent}` : `${info.data_shape.join('×')} → ${info.latent}`;
  const data = info.data.source === 'fashion-mnist' ? 'Fashion-MNIST' : info.data.source;
  const last = info.last_epoch;
  const elbo = last && typeof last.test_elbo === 'number' ? ` · test ELBO ${fmt(last.test_elbo)} nats after ${info.epochs} epoch${info.epochs === 1 ? '' : 's'}` : '';
  return `${m.type} ${arch}, ${m.likelihood} · ${data} (${info.test_size} test images)${elbo}`;
}

async function main() {
  document.getElementById('error-close').addEventListener('click', clearError);
  const hash = location.hash;
  const info = await guarded(() => get('/api/info'));
  if (!info) {
    document.getElementById('model-summary').textContent = 'the model could not be loaded';
    return;
  }
  state.info = info;
  const kind = info.kind || 'images';
  const tabs = buildTabs(kind);
  document.getElementById('model-summary').textContent = summary(info);
  // Every view mounts at once (their data loads in parallel with the first input's encoding).
  const mounts = tabs.entries.map(async (entry) => {
    const applies = await entry.view.mount(entry.panel);
    entry.mounted = true;
    if (entry.view.optional && applies !== false) {
      entry.tab.hidden = false;
      if (hash === `#${entry.view.id}`) entry.tab.click(); // an address naming an optional view
    }
    if (tabs.current() === entry) entry.view.show();
  });
  await Promise.all(kind === 'images' ? [...mounts, setInput({ index: 0 })] : mounts);
  document.body.dataset.ready = 'true';
}

main();
