// The explorer page: loads the model's description, wires the tabs, starts every view.
import { get, guarded, clearError } from './api.js';
import { fmt } from './draw.js';
import { state, setInput } from './state.js';
import { initManifold } from './views/manifold.js';
import { initKl } from './views/kl.js';
import { initReparam } from './views/reparam.js';
import { initWalk } from './views/walk.js';
import { initTraining } from './views/training.js';
import { initAnomaly } from './views/anomaly.js';
import { initSd } from './views/sd.js';

function initTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(t.getAttribute('aria-controls'));
      if (!on && !panel.hidden) panel.dispatchEvent(new Event('hide'));
      panel.hidden = !on;
    }
    if (focus) tab.focus();
    history.replaceState(null, '', `#${tab.id.replace('tab-', '')}`);
  };
  tabs.forEach((tab) => {
    tab.addEventListener('click', () => select(tab, false));
    tab.addEventListener('keydown', (e) => {
      const shown = tabs.filter((t) => !t.hidden); // the SD tab only when the server has an autoencoder
      const i = shown.indexOf(tab);
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: shown.length - 1 };
      if (e.key in moves) {
        e.preventDefault();
        select(shown[(moves[e.key] + shown.length) % shown.length], true);
      }
    });
  });
  const start = tabs.find((t) => `#${t.id.replace('tab-', '')}` === location.hash);
  if (start) select(start, false);
}

function summary(info) {
  const m = info.model;
  const arch = m.type === 'mlp_vae' ? `${info.data_shape.reduce((a, b) => a * b, 1)}-${(m.hidden || []).join('-')}-${info.latent}` : `${info.data_shape.join('×')} → ${info.latent}`;
  const data = info.data.source === 'fashion-mnist' ? 'Fashion-MNIST' : info.data.source;
  const last = info.last_epoch;
  const elbo = last && typeof last.test_elbo === 'number' ? ` · test ELBO ${fmt(last.test_elbo)} nats after ${info.epochs} epoch${info.epochs === 1 ? '' : 's'}` : '';
  return `${m.type} ${arch}, ${m.likelihood} · ${data} (${info.test_size} test images)${elbo}`;
}

async function main() {
  document.getElementById('error-close').addEventListener('click', clearError);
  initTabs();
  const info = await guarded(() => get('/api/info'));
  if (!info) {
    document.getElementById('model-summary').textContent = 'the model could not be loaded';
    return;
  }
  state.info = info;
  document.getElementById('model-summary').textContent = summary(info);
  initKl();
  initReparam();
  initAnomaly();
  await Promise.all([initManifold(), initWalk(), initTraining(), initSd(), setInput({ index: 0 })]);
  document.body.dataset.ready = 'true';
}

main();
