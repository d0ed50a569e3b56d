// SMILES, where untrusted strings reach RDKit and latent's tokenizer: a user's .smi and .csv files
// (the first byte picks which), randomized spellings, the vocabulary's round trip (exact: a trap
// when it is not), and the properties of whatever RDKit accepts.
#include "fuzz_util.h"
#include "latent/chem.h"
#include "latent/error.h"
#include "latent/smiles_tokens.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool csv = data[0] & 1;
  const std::string path = latent::fuzz::as_file(data + 1, size - 1, csv ? ".csv" : ".smi");
  try {
    const latent::MoleculeTable table = latent::read_molecule_file(path);
    std::vector<std::string> smiles;
    for (size_t i = 0; i < table.molecules.size() && i < 8; ++i) smiles.push_back(table.molecules[i].smiles);
    const latent::SmilesVocabulary vocabulary = latent::SmilesVocabulary::build(smiles);
    for (const std::string& s : smiles) {
      latent::canonical_smiles(latent::randomized_smiles(s, size));
      if (vocabulary.decode(vocabulary.encode(s)) != s) __builtin_trap();
      if (s.size() < 200) latent::molecule_properties(s);
    }
  } catch (const latent::Error&) {
  }
  return 0;
}
