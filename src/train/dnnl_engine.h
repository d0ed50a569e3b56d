// The process's one oneDNN CPU engine, shared by every oneDNN user in latent (only included where
// LATENT_HAVE_DNNL is defined).
#pragma once

#include <dnnl.hpp>

namespace latent {

inline const dnnl::engine& dnnl_cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

}  // namespace latent
