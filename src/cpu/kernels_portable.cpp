// The portable twin of every kernel: the generic loops for the build's baseline target, with no
// intrinsics, on any architecture. Every other variant is checked against it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/kernels.h"

namespace latent::cpu::portable {

#include "cpu/kernels_generic.inc"

}  // namespace latent::cpu::portable

namespace latent::cpu {

const Kernels* portable_kernels() {
  static const Kernels table = portable::generic_table(Isa::kPortable);
  return &table;
}

float exp_nonpositive(float x) { return portable::exp_np(x); }
float log1p_unit(float e) { return portable::log1p_u(e); }

}  // namespace latent::cpu
