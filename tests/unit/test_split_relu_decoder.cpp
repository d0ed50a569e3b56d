// SplitReluDecoder against the same decoder in float64, on decoders built to have units that fire on
// every row, on none and on some, with sizes that leave partial tiles, panels, blocks and spans; on
// every kernel variant this CPU runs (portable, AVX2, AVX-512).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "eval/split_relu_decoder.h"

namespace latent {
namespace {

struct Decoder {
  std::vector<at::Tensor> w, b;  // PyTorch's layout: [out, in], [out]
};

// Layers of the given sizes; in the last hidden layer the first `on` units get a bias that keeps them
// firing, the next `off` one that keeps them silent and the next `mostly` one that has them fire on
// most rows (folded, with their negative part in the products), for latent codes near the origin.
Decoder make_decoder(const std::vector<int64_t>& sizes, int64_t on, int64_t off, int64_t mostly = 0) {
  Decoder m;
  for (size_t j = 0; j + 1 < sizes.size(); ++j) {
    m.w.push_back(at::randn({sizes[j + 1], sizes[j]}, at::kDouble) / std::sqrt(static_cast<double>(sizes[j])));
    m.b.push_back(at::randn({sizes[j + 1]}, at::kDouble) * 0.1);
  }
  if (m.b.size() >= 2) {
    at::Tensor& bh = m.b[m.b.size() - 2];
    bh.narrow(0, 0, on).fill_(30.0);
    bh.narrow(0, on, off).fill_(-30.0);
    bh.narrow(0, on + off, mostly).fill_(2.0);
  }
  return m;
}

std::unique_ptr<SplitReluDecoder> make_split(const Decoder& m, const cpu::Kernels* k) {
  std::vector<SplitReluDecoder::Layer> layers;
  for (size_t j = 0; j < m.w.size(); ++j)
    layers.push_back({m.w[j].t().contiguous().to(at::kFloat), m.b[j].to(at::kFloat).contiguous()});
  return SplitReluDecoder::make(layers, k);
}

// log p(x | z) per row in float64, from the float32-rounded weights the decoder holds.
at::Tensor reference(const Decoder& m, const at::Tensor& z, const at::Tensor& x) {
  at::Tensor h = z.to(at::kDouble);
  for (size_t j = 0; j < m.w.size(); ++j) {
    h = at::linear(h, m.w[j].to(at::kFloat).to(at::kDouble), m.b[j].to(at::kFloat).to(at::kDouble));
    if (j + 1 < m.w.size()) h = h.relu();
  }
  const at::Tensor xd = x.to(at::kDouble);
  return (xd * h - at::softplus(h)).sum(1);  // x l - log(1 + e^l)
}

struct SplitCase {
  std::vector<int64_t> sizes;  // d, hidden..., D
  int64_t on, off, mostly, rows;
};

TEST(SplitReluDecoder, MatchesFloat64) {
  // float32 products of up to 90 terms and a float32 sum of D terms per row, against float64:
  // within 1e-6 of the sum of |x l| + softplus(l) per row (measured worst 4e-8 of it; leaving out
  // one unit's products misses by ~1e-2 of it).
  const std::vector<SplitCase> cases = {
      {{5, 70, 37}, 30, 20, 10, 700},      // spans of 256 and a last one of 188: blocks of 32 and 28
      {{3, 16, 12}, 0, 0, 0, 3},           // fewer rows than a tile; fewer outputs than a vector
      {{4, 90, 100}, 40, 10, 20, 333},     // most units folded; a full 48-column panel and tails
      {{6, 24, 70, 50}, 30, 20, 10, 300},  // two hidden layers: u is the first's output (24 wide)
      {{5, 40, 31}, 0, 38, 0, 64},         // two units left, and a last vector of 15 columns
  };
  for (const cpu::Kernels* k : cpu::variants())
    for (const SplitCase& c : cases) {
      SCOPED_TRACE(std::string(cpu::isa_name(k->isa)) + " " + std::to_string(c.sizes.size() == 3 ? c.sizes[1] : -c.sizes[2]));
      at::manual_seed(c.rows);
      const Decoder m = make_decoder(c.sizes, c.on, c.off, c.mostly);
      auto split = make_split(m, k);
      ASSERT_TRUE(split);
      const int64_t d = c.sizes.front(), D = c.sizes.back();
      // One image's samples: z = mu + sigma eps around a point near the origin.
      const at::Tensor z = (at::randn({1, d}) * 0.5 + at::randn({c.rows, d}) * 0.7).contiguous();
      const at::Tensor x = at::rand({D});
      std::vector<double> out(c.rows);
      SplitReluDecoder::Work work;
      split->log_likelihood_one(z.data_ptr<float>(), c.rows, x.data_ptr<float>(), out.data(), &work);
      const at::Tensor expect = reference(m, z, x.expand({c.rows, D}));
      // The scale of each row's sum, for the tolerance.
      at::Tensor l = z.to(at::kDouble);
      for (size_t j = 0; j < m.w.size(); ++j) {
        l = at::linear(l, m.w[j], m.b[j]);
        if (j + 1 < m.w.size()) l = l.relu();
      }
      const at::Tensor scale = ((x.to(at::kDouble) * l).abs() + at::softplus(l)).sum(1);
      for (int64_t r = 0; r < c.rows; ++r)
        ASSERT_NEAR(out[r], expect[r].item<double>(), 1e-6 * scale[r].item<double>()) << "row " << r;
      EXPECT_EQ(work.rows, c.rows);
      EXPECT_EQ(work.dense_multiply_adds, c.rows * c.sizes[c.sizes.size() - 2] * D);
    }
}

TEST(SplitReluDecoder, LeavesOutSilentUnitsAndFoldsFiringOnes) {
  // 30 of 70 units fire on every row and 20 on none: folded, the firing ones cost 6 columns (5
  // latent + 1) per row instead of 30, and the silent ones nothing. Unfolded, every row's product
  // would take at least the 30 firing units.
  for (const cpu::Kernels* k : cpu::variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    at::manual_seed(3);
    const Decoder m = make_decoder({5, 70, 37}, 30, 20);
    auto split = make_split(m, k);
    ASSERT_TRUE(split);
    const int64_t rows = 512;
    const at::Tensor z = (at::randn({rows, 5}) * 0.7).contiguous();
    const at::Tensor x = at::rand({37});
    std::vector<double> out(rows);
    SplitReluDecoder::Work work;
    split->log_likelihood_one(z.data_ptr<float>(), rows, x.data_ptr<float>(), out.data(), &work);
    EXPECT_LT(work.multiply_adds, rows * 30 * 37) << "the firing units were not folded";
    EXPECT_GT(work.multiply_adds, rows * 6 * 37) << "the mixed units are missing from the product";
    EXPECT_EQ(work.dense_multiply_adds, rows * 70 * 37);
  }
}

TEST(SplitReluDecoder, PassesNaNOnAsTheDenseDecoderDoes) {
  // A NaN weight in one hidden unit (firing or silent) makes every row's log-likelihood NaN, as in
  // the dense decoder, rather than dropping the unit.
  for (const cpu::Kernels* k : cpu::variants())
    for (int64_t unit : {0, 35, 60}) {  // firing on every row, silent on every row, mixed
      SCOPED_TRACE(cpu::isa_name(k->isa));
      at::manual_seed(5);
      Decoder m = make_decoder({5, 70, 37}, 30, 20, 10);
      m.w[0][unit][2] = NAN;
      auto split = make_split(m, k);
      ASSERT_TRUE(split);
      const at::Tensor z = (at::randn({40, 5}) * 0.7).contiguous();
      const at::Tensor x = at::rand({37});
      std::vector<double> out(40);
      split->log_likelihood_one(z.data_ptr<float>(), 40, x.data_ptr<float>(), out.data());
      for (int64_t r = 0; r < 40; ++r) EXPECT_TRUE(std::isnan(out[r])) << "unit " << unit << ", row " << r;
    }
}

TEST(SplitReluDecoder, NeedsAHiddenLayerAndChainedShapes) {
  at::manual_seed(4);
  const cpu::Kernels* k = &cpu::kernels();
  const Decoder one = make_decoder({3, 8}, 0, 0);  // no hidden layer
  EXPECT_FALSE(make_split(one, k));
  Decoder broken = make_decoder({3, 16, 12}, 0, 0);
  broken.w[1] = at::randn({12, 15}, at::kDouble);  // 15 inputs after 16 outputs
  EXPECT_TRUE(make_split(make_decoder({3, 16, 12}, 0, 0), k));
  EXPECT_THROW(make_split(broken, k), std::exception);
}

}  // namespace
}  // namespace latent
