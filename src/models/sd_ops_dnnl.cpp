#include "models/sd_ops.h"

namespace latent {

std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision) { return nullptr; }

}  // namespace latent
