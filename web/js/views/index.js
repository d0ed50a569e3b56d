// Every view of the explorer, in tab order. A view is a module whose default export is
//   { id, title, optional?, mount(panel), show(), hide() }:
// mount builds its DOM into its (empty) panel and wires it, returning a promise when it loads data
// (resolving to false when it does not apply: an `optional` view's tab then stays hidden); show and
// hide are called as its tab is selected and left (a hidden view runs no timers). Adding a view is
// one new file in this folder and one line here. `kind` (default "images") is the models a view
// applies to: an image VAE's tabs, or "molecules" for a SMILES VAE (/api/info's "kind").
import manifold from './manifold.js';
import kl from './kl.js';
import reparam from './reparam.js';
import walk from './walk.js';
import training from './training.js';
import train from './train.js';
import anomaly from './anomaly.js';
import sd from './sd.js';
import molecules from './molecules.js';

export const views = [manifold, kl, reparam, walk, training, train, anomaly, sd, molecules];
