// oneDNN in latent: the process's one CPU engine, and oneDNN's exceptions turned into latent's.
// Included only by the sources of src/cpu/ that are built with oneDNN (LATENT_HAVE_DNNL).
#pragma once

#include <dnnl.hpp>
#include <string>
#include <utility>

#include "cpu/features.h"
#include "latent/cpu.h"
#include "latent/error.h"

namespace latent::cpu {

/// The engine every oneDNN user in latent shares. features() runs first, so that the ISA cap is
/// given to oneDNN before anything dispatches.
inline const dnnl::engine& dnnl_engine() {
  static const dnnl::engine engine = [] {
    features();
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

/// f(), with a dnnl::error rethrown as latent::Error naming what was being done and on which CPU:
/// "<what>: oneDNN: <its message> (AMD EPYC: kernels avx2, oneDNN avx2, no bfloat16)".
template <class F>
auto dnnl_call(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return std::forward<F>(f)();
  } catch (const dnnl::error& e) {
    throw Error(what + ": oneDNN: " + e.what() + " (" + cpu_summary() + ")");
  }
}

}  // namespace latent::cpu
