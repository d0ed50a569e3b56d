// Molecule pictures: RDKit's 2D depictions, as PNG grids (cairo) and SVG.
#include <GraphMol/MolDraw2D/MolDraw2DSVG.h>
#ifdef LATENT_HAVE_CAIRO
#include <GraphMol/MolDraw2D/MolDraw2DCairo.h>
#endif

#include "chem/rdkit_mol.h"
#include "latent/chem.h"
#include "latent/error.h"

namespace latent {

std::string molecule_grid_png(const std::vector<std::string>& smiles, const std::vector<std::string>& legends, int columns,
                              int cell) {
#ifdef LATENT_HAVE_CAIRO
  if (smiles.empty()) throw Error("no molecules to draw");
  if (columns < 1 || cell < 50 || cell > 2000) throw Error("molecule grid: columns >= 1 and cells of 50 to 2000 pixels");
  const int n = static_cast<int>(smiles.size());
  const int cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  std::vector<chem::MolPtr> owned;
  std::vector<RDKit::ROMol*> mols;
  for (const auto& s : smiles) {
    chem::MolPtr m = chem::parse_smiles(s);
    if (!m || m->getNumAtoms() == 0) m = chem::parse_smiles("*");  // a lone "*" marks the cell, which keeps its legend
    mols.push_back(m.get());
    owned.push_back(std::move(m));
  }
  std::vector<std::string> text = legends;
  text.resize(smiles.size());
  RDKit::MolDraw2DCairo drawer(cols * cell, rows * cell, cell, cell);
  drawer.drawOptions().legendFontSize = 14;
  drawer.drawMolecules(mols, &text);
  drawer.finishDrawing();
  return drawer.getDrawingText();
#else
  (void)smiles, (void)legends, (void)columns, (void)cell;
  throw Error("this latent was built without cairo's headers, so it cannot draw molecules (Debian: libcairo2-dev, then rebuild)");
#endif
}

std::string molecule_svg(const std::string& smiles, int width, int height) {
  const chem::MolPtr m = chem::parse_smiles(smiles);
  if (!m || m->getNumAtoms() == 0) return "";
  RDKit::MolDraw2DSVG drawer(width, height);
  drawer.drawMolecule(*m);
  drawer.finishDrawing();
  return drawer.getDrawingText();
}

}  // namespace latent
