#!/usr/bin/python3
"""RDKit's Python (Debian's python3-rdkit) as the reference for latent's chemistry.

  rdkit_reference.py fixture OUT.csv   writes the committed fixture tests/fixtures/chem_properties.csv:
                                       canonical SMILES and properties of a spread of pool molecules
                                       and hand-picked hard cases (stereo, spiro, bridgeheads,
                                       macrocycles, charges, salts, invalid strings)
  rdkit_reference.py metrics OUT.json  writes tests/fixtures/chem_metrics.json: Morgan fingerprints
                                       (radius 2, 2048 bits) and PAINS/Brenk verdicts of the fixture's
                                       molecules, and MOSES's metrics (validity, uniqueness, novelty,
                                       internal diversity, nearest-neighbour similarity, filters,
                                       Wasserstein-1 of logP) of a small hand-made sample
  rdkit_reference.py check POOL.csv    compares latent's built-in pool (the molecules.csv latent
                                       caches) with the same pool built here: the same molecules,
                                       the same split, and every property within 1e-5 (absolute)

QED is rdkit.Chem.QED.qed; SA is Contrib/SA_Score/sascorer.py from rdkit-data; logP, MolWt and
TPSA are RDKit's descriptors. The pool's rules are the ones in src/chem/molecule_pool.cpp.
"""
import csv
import hashlib
import sys

from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem import Crippen, Descriptors, QED, rdMolDescriptors

RDLogger.DisableLog('rdApp.*')
DATA = '/usr/share/RDKit'
sys.path.append(DATA + '/Contrib/SA_Score')
import sascorer  # noqa: E402

TOLERANCE = 1e-5
ALLOWED = set('C N O S F Cl Br I P'.split())
SMILES_FILES = [  # path, column, separator (None: whitespace), header
    ('Data/Pains/test_data/wehi_mols.csv', 0, 'csv', False),
    ('Data/NCI/first_5K.smi', 0, None, False),
    ('Contrib/FreeWilson/data/CHEMBL2321810.smi', 0, None, False),
    ('Contrib/NIBRSubstructureFilters/examples/chembl24_structs_randomtestSample_100.csv', 1, ',', True),
    ('Contrib/fraggle/data/ChEMBL_11265_actives.smi', 0, None, False),
    ('Contrib/SA_Score/data/zim.100.txt', 0, '\t', True),
    ('Contrib/Fastcluster/cdk2.smi', 1, '\t', False),
]
SDF_FILES = ['Contrib/PBF/testData/egfr.sdf', 'Projects/DbCLI/testData/bzr.sdf',
             'Projects/DbCLI/testData/pubchem.200.sdf', 'Contrib/Fastcluster/testdata/cdk2.sdf',
             'Data/NCI/first_200.props.sdf']
HARD_CASES = [
    'C[C@H](N)C(=O)O',                    # stereo (dropped by the canonical form)
    'F/C=C/F',                            # double-bond stereo
    'C1CCC2(CC1)CCCC2',                   # spiro
    'C1CC2CCC1C2',                        # bridgeheads (norbornane)
    'C1CCCCCCCCCCC1',                     # macrocycle
    'O=C1CCCCCCCCCCCCCCCN1',              # macrocyclic lactam
    'C[N+](C)(C)C.[Cl-]',                 # a salt: its largest fragment
    'O=[N+]([O-])c1ccc(Cl)cc1',           # charges, nitro alert
    'c1ccc2ccccc2c1',                     # fused aromatics
    'CC(C)(C)c1ccc(O)cc1',
    'OC1C(O)C(O)C(O)C(O)C1O',             # six unassigned stereo centres
    'CCOP(=O)(OCC)OCC',                   # phosphorus
    'Ic1ccccc1',                          # iodine alert
    'C#CC(=O)c1ccccc1',
    'CC(=O)Oc1ccccc1C(=O)O',              # aspirin
    'CN1C=NC2=C1C(=O)N(C(=O)N2C)C',       # caffeine, Kekule input
    '[2H]C([2H])([2H])c1ccccc1',          # isotopes
    'C1=CC=CC=C1',
]
INVALID = ['C1CC', 'c1cccc1', 'C(C)(C)(C)(C)C', 'Xx', '', 'CC((C)']


def largest_fragment(m):
    return max(Chem.GetMolFrags(m, asMols=True), key=lambda f: f.GetNumHeavyAtoms())


def canonical_of(m):
    """Written, read back and written again: a fixed point ("[2H]C" -> "[H]C" -> "C")."""
    once = Chem.MolToSmiles(m, isomericSmiles=False)
    again = Chem.MolFromSmiles(once)
    return Chem.MolToSmiles(again, isomericSmiles=False) if again is not None and again.GetNumAtoms() else once


def canonical(smiles):
    m = Chem.MolFromSmiles(smiles) if smiles else None
    if m is None or m.GetNumAtoms() == 0:
        return None
    return canonical_of(m)


def properties(smiles):
    m = Chem.MolFromSmiles(smiles)
    qed = QED.qed(m)
    sa = sascorer.calculateScore(m)
    return dict(logp=Crippen.MolLogP(m), mw=Descriptors.MolWt(m), tpsa=rdMolDescriptors.CalcTPSA(m), qed=qed,
                sa=sa, heavy_atoms=m.GetNumHeavyAtoms(), rings=m.GetRingInfo().NumRings())


def split_of(smiles):
    h = 14695981039346656037
    for c in smiles.encode():
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return {0: 2, 1: 1}.get(h % 10, 0)


def field(line, column, sep):
    if sep == 'csv':
        parts = next(csv.reader([line]))
    else:
        parts = line.split(sep)
    return parts[column] if column < len(parts) else ''


def raw_smiles():
    for path, column, sep, header in SMILES_FILES:
        with open(f'{DATA}/{path}') as f:
            for number, line in enumerate(f.read().split('\n'), 1):
                if (header and number == 1) or not line or line.startswith('#'):
                    continue
                yield field(line, column, sep)
    for path in SDF_FILES:
        for m in Chem.SDMolSupplier(f'{DATA}/{path}'):
            if m is not None:
                yield Chem.MolToSmiles(m)


def pool():
    seen, kept = set(), []
    for s in raw_smiles():
        m = Chem.MolFromSmiles(s) if s else None
        if m is None or m.GetNumAtoms() == 0:
            continue
        m = largest_fragment(m)
        if any(a.GetSymbol() not in ALLOWED for a in m.GetAtoms()):
            continue
        if not 6 <= m.GetNumHeavyAtoms() <= 38:
            continue
        c = canonical_of(m)
        if c not in seen:
            seen.add(c)
            kept.append(c)
    return sorted(kept)


def write_fixture(out):
    molecules = pool()
    chosen = molecules[::97] + HARD_CASES
    with open(out, 'w', newline='') as f:
        f.write(f'# RDKit {rdBase.rdkitVersion}: tests/chem/rdkit_reference.py fixture; pool of {len(molecules)} '
                f'molecules, sha256 of its sorted SMILES {hashlib.sha256(chr(10).join(molecules).encode()).hexdigest()}\n')
        w = csv.writer(f, lineterminator='\n')
        w.writerow(['input', 'canonical', 'split', 'logp', 'mw', 'tpsa', 'qed', 'sa', 'heavy_atoms', 'rings'])
        for s in chosen:
            c = canonical(s)
            p = properties(c)
            w.writerow([s, c, split_of(c)] + [repr(p[k]) for k in ('logp', 'mw', 'tpsa', 'qed', 'sa')] +
                       [p['heavy_atoms'], p['rings']])
        for s in INVALID:
            w.writerow([s, '', '', '', '', '', '', '', '', ''])
    print(f'{out}: {len(chosen)} molecules, {len(INVALID)} invalid strings; pool {len(molecules)}')


def filter_catalog():
    from rdkit.Chem import FilterCatalog
    params = FilterCatalog.FilterCatalogParams()
    params.AddCatalog(FilterCatalog.FilterCatalogParams.FilterCatalogs.PAINS)
    params.AddCatalog(FilterCatalog.FilterCatalogParams.FilterCatalogs.BRENK)
    return FilterCatalog.FilterCatalog(params)


def wasserstein(a, b):
    a, b = sorted(a), sorted(b)
    grid = sorted(a + b)
    w = 0.0
    for k in range(len(grid) - 1):
        fa = sum(1 for x in a if x <= grid[k]) / len(a)
        fb = sum(1 for x in b if x <= grid[k]) / len(b)
        w += abs(fa - fb) * (grid[k + 1] - grid[k])
    return w


def write_metrics(out):
    import json
    from rdkit import DataStructs
    from rdkit.Chem import AllChem
    catalog = filter_catalog()
    fp = lambda s: AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, 2048)
    molecules = [canonical(s) for s in pool()[::331] + HARD_CASES]
    fingerprints = [{'smiles': s, 'on_bits': list(fp(s).GetOnBits()),
                     'filters': not catalog.HasMatch(Chem.MolFromSmiles(s))} for s in molecules]
    # A "generated" sample: valid and invalid strings, repeats, molecules of the training set.
    train = molecules[:20]
    test = molecules[20:40]
    samples = molecules[10:30] + molecules[15:25] + INVALID + ['OCC', 'c1ccccc1O', 'c1ccccc1O', 'C1=CC=CC=C1O']
    valid = [canonical(s) for s in samples if s and canonical(s)]
    distinct = list(dict.fromkeys(valid))
    fps = [fp(s) for s in distinct]
    pairs = [DataStructs.TanimotoSimilarity(fps[i], fps[j]) for i in range(len(fps)) for j in range(i + 1, len(fps))]
    test_fps = [fp(s) for s in test]
    nn = [max(DataStructs.BulkTanimotoSimilarity(fp(s), test_fps)) for s in valid]
    metrics = {'samples': samples, 'train': train, 'test': test,
               'validity': len(valid) / len(samples), 'uniqueness': len(distinct) / len(valid),
               'novelty': sum(1 for s in distinct if s not in set(train)) / len(distinct),
               'internal_diversity': 1 - sum(pairs) / len(pairs), 'nn_similarity': sum(nn) / len(nn),
               'filters': sum(1 for s in valid if not catalog.HasMatch(Chem.MolFromSmiles(s))) / len(valid),
               'logp_wasserstein': wasserstein([Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in distinct],
                                               [Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in test])}
    with open(out, 'w') as f:
        json.dump({'rdkit': rdBase.rdkitVersion, 'script': 'tests/chem/rdkit_reference.py metrics',
                   'fingerprints': fingerprints, 'metrics': metrics}, f, indent=1)
    print(f'{out}: {len(fingerprints)} fingerprints, {sum(not x["filters"] for x in fingerprints)} caught by the filters')


def check(path):
    with open(path) as f:
        lines = [l for l in f.read().split('\n') if l and not l.startswith('#')]
    rows = list(csv.DictReader(lines))
    mine = [r['smiles'] for r in rows]
    reference = pool()
    failures = 0
    if mine != reference:
        a, b = set(mine), set(reference)
        print(f'pool differs: latent {len(mine)}, RDKit {len(reference)}; only in latent {sorted(a - b)[:5]}, '
              f'only in RDKit {sorted(b - a)[:5]}')
        failures += 1
    worst = {k: 0.0 for k in ('logp', 'mw', 'tpsa', 'qed', 'sa')}
    for r in rows:
        p = properties(r['smiles'])
        if int(r['split']) != split_of(r['smiles']):
            print(f'{r["smiles"]}: split {r["split"]}, expected {split_of(r["smiles"])}')
            failures += 1
        for k in worst:
            err = abs(float(r[k]) - p[k])
            worst[k] = max(worst[k], err)
            if err > TOLERANCE:
                failures += 1
                if failures < 20:
                    print(f'{r["smiles"]}: {k} latent {r[k]}, RDKit {p[k]!r}')
        for k in ('heavy_atoms', 'rings'):
            if int(r[k]) != p[k]:
                failures += 1
                print(f'{r["smiles"]}: {k} latent {r[k]}, RDKit {p[k]}')
    print(f'{len(rows)} molecules (RDKit {rdBase.rdkitVersion}); largest differences: ' +
          ', '.join(f'{k} {v:.2e}' for k, v in worst.items()) + f'; tolerance {TOLERANCE}; {failures} failures')
    return 1 if failures else 0


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'fixture':
        write_fixture(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == 'metrics':
        write_metrics(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == 'check':
        sys.exit(check(sys.argv[2]))
    else:
        sys.exit(__doc__)
