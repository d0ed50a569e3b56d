// Builds the built-in molecule pool into a folder (its molecules.csv), for tests/chem/test_pool.sh.
// Exits 77 (CTest's "skipped") when this latent has no RDKit.
#include <cstdio>

#include "latent/chem.h"
#include "latent/error.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: chem_pool CACHE_DIR\n");
    return 2;
  }
  if (!latent::chem_available()) {
    std::printf("skipped: this latent was built without RDKit\n");
    return 77;
  }
  try {
    const latent::MoleculePool pool = latent::builtin_molecule_pool(argv[1]);
    int splits[3] = {0, 0, 0};
    for (int8_t s : pool.split) ++splits[s];
    std::printf("%zu molecules (train %d, valid %d, test %d) in %s/molecules.csv\n", pool.molecules.size(), splits[0], splits[1],
                splits[2], argv[1]);
  } catch (const latent::Error& e) {
    std::fprintf(stderr, "chem_pool: %s\n", e.what());
    return 1;
  }
  return 0;
}
