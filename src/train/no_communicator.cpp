// Builds without c10d/Gloo (CMake found no Gloo headers): jobs of one process only.
#include "latent/distributed.h"
#include "latent/error.h"

namespace latent {
bool distributed_available() { return false; }
std::unique_ptr<Communicator> Communicator::join(const RankInfo& me, const DistOptions&, const nlohmann::json&) {
  throw Error("rank " + std::to_string(me.rank) + " of " + std::to_string(me.world) +
              ": this build of latent has no distributed training (LibTorch's c10d with Gloo's headers: Debian's libgloo-dev)");
}
}  // namespace latent
