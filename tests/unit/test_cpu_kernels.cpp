// Every kernel variant this CPU can run (cpu::variants(): AVX-512, AVX2) against the portable twin,
// kernel by kernel, as llama.cpp's test-backend-ops compares backends: lengths that leave vector
// tails, values that reach the approximations' edges, NaN where a kernel must pass it on. The
// variants run the same loops (or hand-written intrinsics) for wider vectors; they may differ from
// the twin only by float rounding (fused multiply-adds, another summation order), which each
// comparison bounds with the tolerance it states. On a CPU with AVX2 only, or capped
// (LATENT_MAX_CPU_ISA), the AVX-512 variant is not listed and is skipped by name.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/build_config.h"
#include "cpu/kernels.h"
#include "latent/error.h"
#include "test_util.h"
#if LATENT_HAVE_DNNL
#include "cpu/dnnl.h"
#endif

namespace latent {
namespace {

using cpu::Kernels;

const Kernels& portable() { return *cpu::variants().front(); }

// The variants to compare with the portable twin; skips (naming the CPU) where there are none.
std::vector<const Kernels*> fast_variants() {
  const auto all = cpu::variants();
  return {all.begin() + 1, all.end()};
}

#define SKIP_WITHOUT_FAST_VARIANTS() \
  if (fast_variants().empty()) GTEST_SKIP() << "no AVX2 or AVX-512 kernels run here (" << cpu_summary() << ")"

std::vector<float> values(int64_t n, double scale, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor t = (at::randn({n}) * scale).contiguous();
  return {t.data_ptr<float>(), t.data_ptr<float>() + n};
}

// |a - b| <= atol + rtol |b| elementwise; NaN only where both are NaN.
template <class T>
::testing::AssertionResult near(const std::vector<T>& a, const std::vector<T>& b, double rtol, double atol) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    if (std::isnan(x) || std::isnan(y)) {
      if (std::isnan(x) != std::isnan(y)) return ::testing::AssertionFailure() << "element " << i << ": " << x << " vs " << y;
      continue;
    }
    if (std::abs(x - y) > atol + rtol * std::abs(y))
      return ::testing::AssertionFailure() << "element " << i << ": " << x << " vs " << y << " (rtol " << rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

TEST(CpuKernels, TheChosenVariantIsTheHighestTheCpuRuns) {
  const auto all = cpu::variants();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front()->isa, cpu::Isa::kPortable);
  EXPECT_EQ(&cpu::kernels(), all.back());
  EXPECT_EQ(cpu::kernels().isa, cpu::features().isa);
  const cpu::Features& f = cpu::features();
  for (const Kernels* k : all) {
    if (k->isa >= cpu::Isa::kAvx2) EXPECT_TRUE(f.avx2) << "an AVX2 variant on a CPU without AVX2";
    if (k->isa >= cpu::Isa::kAvx512) EXPECT_TRUE(f.avx512) << "an AVX-512 variant on a CPU without AVX-512";
  }
  EXPECT_TRUE(f.conv_block == 8 || f.conv_block == 16);
  EXPECT_FALSE(cpu_summary().empty());
}

TEST(CpuKernels, TrainingStepKernelsMatchThePortableTwin) {
  // Same elementwise arithmetic in other vector widths, where the compiler may fuse a multiply and
  // an add into one instruction: 1e-6 relative, 1e-7 absolute on values of order 1.
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    for (int64_t D : {1, 7, 37, 784}) {
      const int64_t B = 5, n = B * D;
      std::vector<float> l = values(n, 12, D), x = values(n, 1, D + 1);
      for (float& v : x) v = std::fabs(v) > 1 ? 1.0f : std::fabs(v);
      l[0] = 90.0f;  // beyond exp's clamp
      if (n > 1) l[1] = -90.0f;
      std::vector<float> g1(n), g2(n), s1(2 * D), s2(2 * D);
      std::vector<double> nll1(B), nll2(B);
      portable().bernoulli_nll_grad(l.data(), x.data(), g1.data(), nll1.data(), s1.data(), 0, B, D, 0.25f);
      k->bernoulli_nll_grad(l.data(), x.data(), g2.data(), nll2.data(), s2.data(), 0, B, D, 0.25f);
      EXPECT_TRUE(near(g2, g1, 1e-6, 1e-7)) << "bernoulli grad, D " << D;
      EXPECT_TRUE(near(nll2, nll1, 1e-6, 1e-6)) << "bernoulli nll, D " << D;

      const std::vector<float> lv = values(D, 1, D + 2);
      std::vector<float> glv1(n), glv2(n);
      portable().gaussian_nll_grad(l.data(), x.data(), lv.data(), g1.data(), glv1.data(), nll1.data(), s1.data(), 0, B, D, 0.5f);
      k->gaussian_nll_grad(l.data(), x.data(), lv.data(), g2.data(), glv2.data(), nll2.data(), s2.data(), 0, B, D, 0.5f);
      EXPECT_TRUE(near(g2, g1, 1e-6, 1e-7)) << "gaussian grad, D " << D;
      EXPECT_TRUE(near(glv2, glv1, 1e-6, 1e-7)) << "gaussian logvar grad, D " << D;
      EXPECT_TRUE(near(nll2, nll1, 1e-6, 1e-6)) << "gaussian nll, D " << D;

      std::vector<float> z1(n), z2(n), sg1(n), sg2(n), mu = values(n, 1, D + 3), eps = values(n, 1, D + 4);
      const std::vector<float> lvr = values(n, 1, D + 5);
      portable().reparam_forward(mu.data(), lvr.data(), eps.data(), z1.data(), sg1.data(), nll1.data(), 0, B, D);
      k->reparam_forward(mu.data(), lvr.data(), eps.data(), z2.data(), sg2.data(), nll2.data(), 0, B, D);
      EXPECT_TRUE(near(z2, z1, 1e-6, 1e-7) && near(sg2, sg1, 1e-6, 0) && near(nll2, nll1, 1e-9, 1e-9)) << "reparam, D " << D;
      std::vector<float> dmu1(n), dmu2(n), dlv1(n), dlv2(n);
      portable().reparam_backward(g1.data(), mu.data(), eps.data(), sg1.data(), dmu1.data(), dlv1.data(), n, 0.3f);
      k->reparam_backward(g1.data(), mu.data(), eps.data(), sg1.data(), dmu2.data(), dlv2.data(), n, 0.3f);
      EXPECT_TRUE(near(dmu2, dmu1, 1e-6, 1e-7) && near(dlv2, dlv1, 1e-6, 1e-7)) << "reparam backward, D " << D;

      std::vector<float> d1 = values(n, 1, D + 6), d2 = d1;
      portable().relu_backward(d1.data(), mu.data(), n);
      k->relu_backward(d2.data(), mu.data(), n);
      EXPECT_EQ(d1, d2) << "relu backward, D " << D;
      std::vector<float> c1 = values(n, 1, D + 7), c2 = c1;
      const std::vector<float> bias = values(D, 1, D + 8);
      for (bool relu : {false, true}) {
        portable().bias_act(c1.data(), bias.data(), B, D, relu);
        k->bias_act(c2.data(), bias.data(), B, D, relu);
        EXPECT_EQ(c1, c2) << "bias_act, D " << D << " relu " << relu;
      }
    }
  }
}

TEST(CpuKernels, AdamMatchesThePortableTwinAndFlushesTinyMoments) {
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    const int64_t n = 1003;
    std::vector<float> p1 = values(n, 1, 1), g = values(n, 0.1, 2), m1 = values(n, 0.01, 3), v1 = values(n, 0.001, 4);
    for (float& v : v1) v = std::fabs(v);
    g[5] = 0.0f, m1[5] = 1e-38f, v1[5] = 1e-38f;  // a dead unit's moments about to go subnormal
    std::vector<float> p2 = p1, m2 = m1, v2 = v1;
    for (int step = 0; step < 3; ++step) {
      portable().adam_update(p1.data(), g.data(), m1.data(), v1.data(), n, 0.9f, 0.999f, 1e-3f, 1.2f, 1e-8f);
      k->adam_update(p2.data(), g.data(), m2.data(), v2.data(), n, 0.9f, 0.999f, 1e-3f, 1.2f, 1e-8f);
    }
    // b1 m + (1 - b1) g may be fused into one multiply-add: a few float ulps of the terms (m ~ 0.01,
    // v ~ 0.001), not of a result that cancels.
    EXPECT_TRUE(near(p2, p1, 1e-6, 1e-8));
    EXPECT_TRUE(near(m2, m1, 1e-6, 1e-8));
    EXPECT_TRUE(near(v2, v1, 1e-6, 1e-9));
    EXPECT_EQ(m2[5], 0.0f);
    EXPECT_EQ(v2[5], 0.0f);
  }
}

TEST(CpuKernels, GruGatesMatchThePortableTwin) {
  SKIP_WITHOUT_FAST_VARIANTS();
  // H = 37 leaves a vector tail; pre-activations up to +-40 reach the sigmoid's and tanh's flat ends.
  const int64_t B = 5, H = 37;
  const auto gi = values(B * 3 * H, 6.0, 31), gh = values(B * 3 * H, 6.0, 32), hp = values(B * H, 1.0, 33);
  auto wide = gi;
  wide[3] = 40.0f;
  wide[H + 4] = -40.0f;
  wide[2 * H + 5] = 1e-4f;
  const auto dh = values(B * H, 1.0, 34);
  for (const Kernels* k : fast_variants()) {
    std::vector<float> h1(B * H), h2(B * H), s1(B * 4 * H), s2(B * 4 * H);
    portable().gru_forward(wide.data(), gh.data(), hp.data(), h1.data(), s1.data(), 0, B, H);
    k->gru_forward(wide.data(), gh.data(), hp.data(), h2.data(), s2.data(), 0, B, H);
    EXPECT_TRUE(near(h2, h1, 1e-6, 1e-7)) << cpu::isa_name(k->isa) << " state";
    EXPECT_TRUE(near(s2, s1, 1e-6, 1e-7)) << cpu::isa_name(k->isa) << " saved gates";
    std::vector<float> h3(B * H);
    k->gru_forward(wide.data(), gh.data(), hp.data(), h3.data(), nullptr, 1, B, H);  // rows [1, B), nothing saved
    EXPECT_TRUE(near(std::vector<float>(h3.begin() + H, h3.end()), std::vector<float>(h2.begin() + H, h2.end()), 0, 0));
    std::vector<float> gi1(B * 3 * H), gi2(B * 3 * H), gh1(B * 3 * H), gh2(B * 3 * H), d1(B * H), d2(B * H);
    portable().gru_backward(dh.data(), s1.data(), hp.data(), gi1.data(), gh1.data(), d1.data(), 0, B, H);
    k->gru_backward(dh.data(), s1.data(), hp.data(), gi2.data(), gh2.data(), d2.data(), 0, B, H);
    EXPECT_TRUE(near(gi2, gi1, 1e-6, 1e-7)) << cpu::isa_name(k->isa);
    EXPECT_TRUE(near(gh2, gh1, 1e-6, 1e-7)) << cpu::isa_name(k->isa);
    EXPECT_TRUE(near(d2, d1, 1e-6, 1e-7)) << cpu::isa_name(k->isa);
  }
}

TEST(CpuKernels, EvaluationKernelsMatchThePortableTwin) {
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    for (int64_t D : {3, 17, 784}) {
      const int64_t R = 9;
      std::vector<float> l = values(R * D, 10, D), x = values(D, 1, D + 1);
      for (float& v : x) v = v > 0 ? 1.0f : 0.0f;
      l[2] = 40.0f, l[3] = -40.0f;  // past the softplus table's last interval
      std::vector<const float*> rows(R, x.data());
      std::vector<double> a(R), b(R);
      portable().bernoulli_log_prob_rows(l.data(), rows.data(), a.data(), 0, R, D);
      k->bernoulli_log_prob_rows(l.data(), rows.data(), b.data(), 0, R, D);
      // The AVX-512 variant reads softplus from a table (both within ~1e-7 per term of float64).
      EXPECT_TRUE(near(b, a, 1e-6, 2e-7 * static_cast<double>(D))) << "log prob, D " << D;

      std::vector<uint8_t> u1(D, 0), u2(D, 0);
      portable().mark_positive(l.data(), R, D, u1.data());
      k->mark_positive(l.data(), R, D, u2.data());
      EXPECT_EQ(u1, u2);
      std::vector<uint16_t> h1(R * D), h2(R * D);
      portable().to_bf16(l.data(), R * D, h1.data());
      k->to_bf16(l.data(), R * D, h2.data());
      EXPECT_EQ(h1, h2);
    }
  }
}

// A [rows, K] in a variant's packing for tile_gemm: [rows / T][K][T], T = its tile_rows.
std::vector<float> pack_for(const Kernels& k, const std::vector<float>& a, int64_t rows, int64_t K) {
  const int64_t T = k.tile_rows;
  std::vector<float> out(a.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < K; ++i) out[(r / T) * K * T + i * T + r % T] = a[r * K + i];
  return out;
}

// pack_columns on 8 rows of x through a variant, as the [8][K] matrix it packed (8 / T calls).
std::vector<float> packed_rows(const Kernels& k, const float* x, int64_t ld, int64_t valid, const std::vector<int32_t>& cols,
                               cpu::Part part) {
  const int64_t K = static_cast<int64_t>(cols.size()), T = k.tile_rows;
  std::vector<float> out(8 * K), buf(K * T, -1.0f);
  for (int64_t r0 = 0; r0 < 8; r0 += T) {
    k.pack_columns(x + r0 * ld, ld, valid - r0, cols.data(), K, part, buf.data());
    for (int64_t i = 0; i < K; ++i)
      for (int64_t r = 0; r < T; ++r) out[(r0 + r) * K + i] = buf[i * T + r];
  }
  return out;
}

TEST(CpuKernels, TileProductMatchesThePortableTwin) {
  // c = init + A B over K terms, ReLU'd or not, on widths that leave every kind of tail of the
  // 48-, 24-, 16- and 8-column tiles: within 1e-5 of sum |a b| (FMA against multiply-then-add).
  // Each variant gets A in its own packing (8-row tiles on AVX-512 and portable, 4 on AVX2).
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    for (int64_t N : {1, 8, 15, 24, 37, 48, 100}) {
      for (bool relu : {false, true}) {
        const int64_t rows = 16, K = 13;
        std::vector<float> a = values(rows * K, 1, N), bm = values(K * N, 1, N + 1), init = values(N, 1, N + 2);
        std::vector<const float*> b(K);
        for (int64_t i = 0; i < K; ++i) b[i] = bm.data() + (K - 1 - i) * N;  // rows through pointers, in any order
        a[5] = std::nanf("");                                                // passes into its row
        const std::vector<float> a1 = pack_for(portable(), a, rows, K), a2 = pack_for(*k, a, rows, K);
        const int64_t ldc = N + 3;
        std::vector<float> c1(rows * ldc, -7.0f), c2 = c1;
        portable().tile_gemm(a1.data(), rows, K, N, b.data(), init.data(), relu, c1.data(), ldc);
        k->tile_gemm(a2.data(), rows, K, N, b.data(), init.data(), relu, c2.data(), ldc);
        EXPECT_TRUE(near(c2, c1, 1e-5, 1e-4)) << "N " << N << " relu " << relu;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = N; j < ldc; ++j) EXPECT_EQ(c2[r * ldc + j], -7.0f) << "wrote past column N";
        k->tile_gemm(a2.data(), rows, K, N, b.data(), nullptr, relu, c2.data(), ldc);
        portable().tile_gemm(a1.data(), rows, K, N, b.data(), nullptr, relu, c1.data(), ldc);
        EXPECT_TRUE(near(c2, c1, 1e-5, 1e-4)) << "no init, N " << N;
      }
    }
  }
}

TEST(CpuKernels, PackingAndSignMarksMatchThePortableTwin) {
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    const int64_t H = 45, ld = 50;
    std::vector<float> x = values(8 * ld, 1, 3);
    x[2] = std::nanf(""), x[ld + 9] = 0.0f;
    for (const std::vector<int32_t>& cols : {std::vector<int32_t>{44, 2, 0, 9, 30, 7, 7}, std::vector<int32_t>{3, 1}})
      for (cpu::Part part : {cpu::Part::kAll, cpu::Part::kPositive, cpu::Part::kNegative})
        for (int64_t valid : {8, 5, 1}) {
          EXPECT_TRUE(near(packed_rows(*k, x.data(), ld, valid, cols, part),
                           packed_rows(portable(), x.data(), ld, valid, cols, part), 0, 0))
              << "part " << static_cast<int>(part) << " valid " << valid << " columns " << cols.size();
        }
    for (int64_t rows : {1, 8}) {
      const int64_t groups = (H + 15) / 16;
      std::vector<uint16_t> above1(groups, 0), below1(groups, 0), above2(groups, 0), below2(groups, 0);
      std::vector<int32_t> count1(groups * 16, 1), count2(groups * 16, 1);
      portable().mark_signs(x.data(), rows, H, above1.data(), below1.data(), count1.data());
      k->mark_signs(x.data(), rows, H, above2.data(), below2.data(), count2.data());
      EXPECT_EQ(above1, above2) << rows;
      EXPECT_EQ(below1, below2) << rows;
      EXPECT_EQ(count1, count2) << rows;
      EXPECT_TRUE(above1[0] & 4 && below1[0] & 4) << "NaN counts as both signs";
    }
  }
}

TEST(CpuKernels, PixelKernelsMatchThePortableTwin) {
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    for (int64_t n : {1, 31, 1000}) {
      std::vector<float> l = values(n, 20, n);
      l[0] = std::nanf("");
      std::vector<uint8_t> a(n), b(n);
      portable().sigmoid_to_u8(l.data(), n, a.data());
      k->sigmoid_to_u8(l.data(), n, b.data());
      EXPECT_EQ(a, b) << n;
      portable().to_u8(l.data(), n, a.data());
      k->to_u8(l.data(), n, b.data());
      EXPECT_EQ(a, b) << n;
    }
  }
}

TEST(CpuKernels, BlockedActivationKernelsMatchThePortableTwin) {
  // Sums of 64 floats per partial (then double): 1e-6 relative. SiLU(x a + b): x a + b may be one
  // fused multiply-add, an ulp of x a (~3e-7 for |x a| < 4) apart, and SiLU's slope is < 1.1: 1e-6.
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    for (int64_t lanes : {8, 16, 24})
      for (int64_t pixels : {1, 63, 130}) {
        const int64_t n = pixels * lanes;
        const at::Tensor xt = at::randn({n + 16}) * 3;
        float* x = xt.data_ptr<float>();  // (aligned for the streaming copy where the allocator aligns it)
        std::vector<double> s1(lanes, 0.5), q1(lanes, 0.5), s2 = s1, q2 = q1;
        portable().block_moments(x, pixels, lanes, s1.data(), q1.data());
        k->block_moments(x, pixels, lanes, s2.data(), q2.data());
        EXPECT_TRUE(near(s2, s1, 1e-6, 1e-5) && near(q2, q1, 1e-6, 1e-5)) << "moments, lanes " << lanes << " pixels " << pixels;
        alignas(64) static float y[130 * 24 + 16];
        std::fill(s2.begin(), s2.end(), 0.5), std::fill(q2.begin(), q2.end(), 0.5);
        k->block_copy_moments(x, pixels, lanes, y, s2.data(), q2.data());
        EXPECT_EQ(std::memcmp(y, x, n * sizeof(float)), 0) << "copy, lanes " << lanes;
        EXPECT_TRUE(near(s2, s1, 1e-6, 1e-5) && near(q2, q1, 1e-6, 1e-5)) << "copy's moments, lanes " << lanes;
        const std::vector<float> a = values(lanes, 1, 5), b = values(lanes, 1, 6);
        for (bool twice : {false, true})
          for (bool affine : {false, true}) {
            const int64_t out = n * (twice ? 2 : 1);
            std::vector<float> f1(out), f2(out);
            std::vector<uint16_t> h1(out), h2(out);
            portable().block_fill(x, pixels, lanes, affine ? a.data() : nullptr, b.data(), twice, f1.data(), nullptr);
            k->block_fill(x, pixels, lanes, affine ? a.data() : nullptr, b.data(), twice, f2.data(), nullptr);
            EXPECT_TRUE(near(f2, f1, 1e-6, 1e-6)) << "fill, lanes " << lanes << " twice " << twice << " affine " << affine;
            portable().block_fill(x, pixels, lanes, affine ? a.data() : nullptr, b.data(), twice, nullptr, h1.data());
            k->block_fill(x, pixels, lanes, affine ? a.data() : nullptr, b.data(), twice, nullptr, h2.data());
            int64_t off_by_more = 0;  // bfloat16 of values that differ in their last float bits may round apart by one
            for (int64_t i = 0; i < out; ++i) off_by_more += std::abs(int(h1[i]) - int(h2[i])) > 1;
            EXPECT_EQ(off_by_more, 0) << "fill bf16, lanes " << lanes;
          }
      }
  }
}

TEST(CpuKernels, WinogradTransformsMatchThePortableTwin) {
  // Sums of up to 36 terms of magnitudes up to ~100 (B^T's and A^T's entries up to 8): 1e-6 relative,
  // 1e-4 absolute.
  SKIP_WITHOUT_FAST_VARIANTS();
  for (const Kernels* k : fast_variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    for (int64_t lanes : {8, 16, 24})
      for (int64_t rows : {6, 9}) {
        const int64_t width = 11, tiles_w = 3, tiles = 2 * tiles_w;  // partial tiles at the right and the bottom
        const std::vector<float> band = values(rows * width * lanes, 1, lanes + rows);
        std::vector<float> v1(tiles * 36 * lanes, -1.0f), v2 = v1;
        portable().wino_input(band.data(), rows, -1, width, lanes, tiles_w, 0, tiles, v1.data(), lanes, 36 * lanes);
        k->wino_input(band.data(), rows, -1, width, lanes, tiles_w, 0, tiles, v2.data(), lanes, 36 * lanes);
        EXPECT_TRUE(near(v2, v1, 1e-6, 1e-4)) << "input, lanes " << lanes << " rows " << rows;
        const std::vector<float> bias = values(lanes, 1, 7);
        for (bool accumulate : {false, true})
          for (bool relu : {false, true}) {
            std::vector<float> y1 = values(rows * width * lanes, 1, 8), y2 = y1;
            portable().wino_output(v1.data(), lanes, 36 * lanes, tiles_w, 0, tiles, rows - 1, width, lanes, bias.data(),
                                   accumulate, relu, y1.data());
            k->wino_output(v1.data(), lanes, 36 * lanes, tiles_w, 0, tiles, rows - 1, width, lanes, bias.data(), accumulate, relu,
                           y2.data());
            EXPECT_TRUE(near(y2, y1, 1e-6, 1e-4))
                << "output, lanes " << lanes << " accumulate " << accumulate << " relu " << relu;
          }
      }
  }
}

TEST(CpuKernels, WinogradTileIsAThreeByThreeConvolution) {
  // One channel, one tile: a band of 6 rows and 4 columns (the tile reads one zero column on each
  // side), B^T d B times G g G^T (the weights transformed here in float64), back through A^T . A,
  // against the 3x3 correlation of the zero-padded input in float64: 1e-5 (float32 sums of terms of
  // magnitude < 100).
  const Kernels& k = portable();
  const std::vector<float> x = values(24, 1, 1), g = values(9, 1, 2);  // x [6, 4], g [3, 3]
  std::vector<float> v(36);
  k.wino_input(x.data(), 6, 0, 4, 1, 1, 0, 1, v.data(), 1, 36);
  const double G[6][3] = {{0.25, 0, 0},
                          {-1. / 6, -1. / 6, -1. / 6},
                          {-1. / 6, 1. / 6, -1. / 6},
                          {1. / 24, 1. / 12, 1. / 6},
                          {1. / 24, -1. / 12, 1. / 6},
                          {0, 0, 1}};
  std::vector<float> m(36);
  for (int i = 0; i < 6; ++i)
    for (int e = 0; e < 6; ++e) {
      double u = 0;
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) u += G[i][a] * g[a * 3 + b] * G[e][b];
      m[i * 6 + e] = static_cast<float>(u * v[i * 6 + e]);
    }
  std::vector<float> y(16, 0.0f);
  k.wino_output(m.data(), 1, 36, 1, 0, 1, 4, 4, 1, nullptr, false, false, y.data());
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      double want = 0;
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) {
          const int col = c + b - 1;  // the input's column (zero outside [0, 4))
          if (col >= 0 && col < 4) want += static_cast<double>(x[(r + a) * 4 + col]) * g[a * 3 + b];
        }
      EXPECT_NEAR(y[r * 4 + c], want, 1e-5) << r << "," << c;
    }
}

#if LATENT_HAVE_DNNL
TEST(CpuDnnl, OneDnnErrorsBecomeLatentErrorsThatSayWhatAndWhere) {
  try {
    cpu::dnnl_call("packing a decoder layer",
                   []() -> int { throw dnnl::error(dnnl_unimplemented, "could not create a primitive"); });
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("packing a decoder layer: oneDNN: could not create a primitive"), std::string::npos) << m;
    EXPECT_NE(m.find(cpu_summary()), std::string::npos) << "names the CPU: " << m;
  }
  EXPECT_EQ(cpu::dnnl_call("a product", [] { return 7; }), 7);
}
#endif

TEST(CpuKernels, PortableTwinIsRightOnItsOwn) {
  // The reference of the comparisons above, against plain float64 arithmetic on a few kernels.
  const Kernels& k = portable();
  const float l[] = {-3.0f, 0.0f, 2.5f, 100.0f}, x[] = {0.0f, 1.0f, 0.5f, 1.0f};
  float g[4], scratch[8];
  double nll;
  k.bernoulli_nll_grad(l, x, g, &nll, scratch, 0, 1, 4, 1.0f);
  double want = 0;
  for (int i = 0; i < 4; ++i) {
    const double li = l[i];
    want += std::max(li, 0.0) + std::log1p(std::exp(-std::abs(li))) - x[i] * li;
    EXPECT_NEAR(g[i], 1 / (1 + std::exp(-li)) - x[i], 1e-6) << i;
  }
  EXPECT_NEAR(nll, want, 1e-5);
  // One GRU cell: r = sigmoid(a_r + b_r), u = sigmoid(a_u + b_u), n = tanh(a_n + r b_n), h = n + u (h - n).
  const float a[] = {-30.0f, 0.3f, 1.2f, 25.0f, -0.7f, 0.004f}, b[] = {0.5f, -0.2f, 0.1f, 2.0f, 0.9f, -1.5f};
  const float h_prev[] = {0.25f, -0.6f};
  float h[2], saved[8];
  k.gru_forward(a, b, h_prev, h, saved, 0, 1, 2);
  for (int j = 0; j < 2; ++j) {
    const double r = 1 / (1 + std::exp(-(double{a[j]} + b[j]))), u = 1 / (1 + std::exp(-(double{a[2 + j]} + b[2 + j])));
    const double n = std::tanh(double{a[4 + j]} + r * b[4 + j]);
    EXPECT_NEAR(saved[j], r, 1e-7 * std::max(1.0, r)) << j;
    EXPECT_NEAR(h[j], (1 - u) * n + u * h_prev[j], 1e-6) << j;
  }
  EXPECT_GT(saved[0], 0.0f);  // sigmoid(-29.5) = 1.5e-13: kept, not rounded to 0
  EXPECT_NEAR(saved[0], 1.5428e-13, 1e-16);
  uint8_t px[4];
  k.sigmoid_to_u8(l, 4, px);
  EXPECT_EQ(px[0], 12);  // 255 sigmoid(-3) = 12.1
  EXPECT_EQ(px[1], 128);
  EXPECT_EQ(px[3], 255);
}

}  // namespace
}  // namespace latent
