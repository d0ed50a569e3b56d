// The packed oneDNN MLP against a plain ATen reference: every row count the explorer can send,
// float32 and bfloat16, and many threads calling one instance at once.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "cpu/kernels.h"
#include "cpu/packed_mlp.h"
#include "latent/error.h"
#include "test_util.h"

namespace latent {
namespace {

using cpu::PackedMlp;

std::vector<PackedMlp::Layer> random_layers(const std::vector<int64_t>& sizes) {
  std::vector<PackedMlp::Layer> layers;
  for (size_t j = 0; j + 1 < sizes.size(); ++j)
    layers.push_back({at::randn({sizes[j + 1], sizes[j]}) / std::sqrt(static_cast<double>(sizes[j])), at::randn({sizes[j + 1]}),
                      j + 2 < sizes.size()});
  return layers;
}

at::Tensor reference(const std::vector<PackedMlp::Layer>& layers, at::Tensor x) {  // float64
  x = x.to(at::kDouble);
  for (const auto& l : layers) {
    x = at::linear(x, l.weight.to(at::kDouble), l.bias.to(at::kDouble));
    if (l.relu) x = x.relu();
  }
  return x;
}

at::Tensor run(const PackedMlp& mlp, const at::Tensor& x) {
  at::Tensor y = at::empty({x.size(0), mlp.out_features()}, at::kFloat);
  mlp.forward(x.data_ptr<float>(), x.size(0), y.data_ptr<float>());
  return y;
}

TEST(PackedMlp, Float32MatchesTheReferenceForEveryRowCount) {
  // float32 products in another order than float64: 1e-4 absolute on outputs of magnitude ~1-3.
  at::manual_seed(1);
  const auto layers = random_layers({20, 64, 48, 30});
  auto mlp = PackedMlp::make(layers, Precision::kFloat32);
  if (!mlp) GTEST_SKIP() << "built without oneDNN";
  EXPECT_EQ(mlp->in_features(), 20);
  EXPECT_EQ(mlp->out_features(), 30);
  for (int64_t rows : {1, 2, 15, 16, 17, 100, 1024}) {
    at::Tensor x = at::randn({rows, 20});
    const double err = (run(*mlp, x).to(at::kDouble) - reference(layers, x)).abs().max().item<double>();
    EXPECT_LT(err, 1e-4) << rows << " rows";
  }
}

TEST(PackedMlp, EveryThreadCountAndRowCountGetsTheWeightsInItsLayout) {
  // oneDNN may choose another weight layout for another row count or thread count (the thread tuner
  // changes the count as it runs): those products read a reordered copy; the results stay within
  // float32 rounding of the reference (1e-4 on outputs of magnitude ~1-3).
  at::manual_seed(11);
  const int threads = at::get_num_threads();
  const auto layers = random_layers({20, 400, 784});
  auto mlp = PackedMlp::make(layers, Precision::kFloat32);
  if (!mlp) GTEST_SKIP() << "built without oneDNN";
  for (int n : {2, 1, 2})
    for (int64_t rows : {1, 16, 300, 1024}) {
      at::set_num_threads(n);
      at::Tensor x = at::randn({rows, 20});
      const double err = (run(*mlp, x).to(at::kDouble) - reference(layers, x)).abs().max().item<double>();
      EXPECT_LT(err, 1e-4) << rows << " rows on " << n << " threads";
    }
  at::set_num_threads(threads);
}

TEST(PackedMlp, BFloat16StaysWithinItsRounding) {
  LATENT_SKIP_WITHOUT_BF16();
  // bfloat16 keeps 8 significant bits: inputs and weights are rounded by up to 2^-9 relative, the
  // sums run in float32. On these sizes the outputs (magnitude ~1-3) move by at most 0.05.
  at::manual_seed(2);
  const auto layers = random_layers({20, 64, 48, 30});
  auto mlp = PackedMlp::make(layers, Precision::kBFloat16);
  if (!mlp) GTEST_SKIP() << "built without oneDNN";
  EXPECT_EQ(mlp->precision(), Precision::kBFloat16);
  for (int64_t rows : {1, 16, 333}) {
    at::Tensor x = at::randn({rows, 20});
    at::Tensor expect = reference(layers, x), got = run(*mlp, x).to(at::kDouble);
    EXPECT_LT((got - expect).abs().max().item<double>(), 0.05) << rows << " rows";
    EXPECT_GT((got - expect).abs().max().item<double>(), 0) << "bf16 gave float32's numbers: was it used?";
  }
}

TEST(PackedMlp, ManyThreadsAtOnceGetTheirOwnResults) {
  at::manual_seed(3);
  const auto layers = random_layers({8, 32, 12});
  auto mlp = PackedMlp::make(layers, Precision::kFloat32);
  if (!mlp) GTEST_SKIP() << "built without oneDNN";
  std::vector<at::Tensor> inputs, expects;
  for (int t = 0; t < 8; ++t) {
    inputs.push_back(at::randn({1 + t * 5, 8}));
    expects.push_back(run(*mlp, inputs.back()));
  }
  std::vector<int> wrong(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 200; ++rep)
        if (!run(*mlp, inputs[t]).equal(expects[t])) ++wrong[t];
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
}

TEST(PackedMlp, RejectsLayersThatDoNotChain) {
  at::manual_seed(4);
  auto layers = random_layers({4, 6, 3});
  layers[1].weight = at::randn({3, 5});
  try {
    auto mlp = PackedMlp::make(layers, Precision::kFloat32);
    if (mlp) FAIL() << "accepted a 6 -> 5 chain";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not chain"), std::string::npos) << e.what();
  }
}

TEST(PackedMlp, PrecisionNames) {
  EXPECT_EQ(parse_precision("fp32"), Precision::kFloat32);
  EXPECT_EQ(parse_precision("bf16"), Precision::kBFloat16);
  EXPECT_STREQ(precision_name(Precision::kBFloat16), "bf16");
  EXPECT_THROW(parse_precision("fp16"), Error);
}

TEST(Kernels, ToU8RoundsAndClamps) {
  const float x[] = {0.0f, 1.0f, 0.5f, -3.0f, 7.0f, std::nanf(""), 1.0f / 255 * 10.49f, 1.0f / 255 * 10.51f, 0.999f};
  const uint8_t expect[] = {0, 255, 128, 0, 255, 0, 10, 11, 255};
  for (const cpu::Kernels* k : cpu::variants()) {
    uint8_t out[9];
    k->to_u8(x, 9, out);
    for (int i = 0; i < 9; ++i) EXPECT_EQ(out[i], expect[i]) << cpu::isa_name(k->isa) << " " << i;
  }
}

TEST(PackedMlp, BFloat16x3KeepsFloat32Accuracy) {
  // Three bfloat16 products per float32 one keep ~17 bits: against float64 the outputs (magnitude
  // ~1-3) stay within 3e-5, where plain bfloat16 misses by more than 1e-3. Every layer is 64 wide
  // or more, so every one is split.
  LATENT_SKIP_WITHOUT_BF16();
  at::manual_seed(7);
  const auto layers = random_layers({96, 128, 80, 40});
  auto x3 = PackedMlp::make(layers, Precision::kBFloat16x3);
  auto bf16 = PackedMlp::make(layers, Precision::kBFloat16);
  if (!x3) GTEST_SKIP() << "built without oneDNN";
  EXPECT_EQ(x3->precision(), Precision::kBFloat16x3);
  for (int64_t rows : {1, 16, 300}) {
    at::Tensor x = at::randn({rows, 96});
    const at::Tensor expect = reference(layers, x);
    const double err = (run(*x3, x).to(at::kDouble) - expect).abs().max().item<double>();
    EXPECT_LT(err, 3e-5) << rows << " rows";
    EXPECT_GT((run(*bf16, x).to(at::kDouble) - expect).abs().max().item<double>(), 1e-3) << rows << " rows";
  }
}

// The MLP cut to the last hidden layer's units that some row uses equals the whole MLP on those
// rows: with one hidden layer (the IWAE decoder's shape) and with two (a layer before the cut one).
void check_restricted_last(Precision precision, double tolerance) {
  for (const std::vector<int64_t>& sizes : {std::vector<int64_t>{20, 100, 50}, std::vector<int64_t>{20, 64, 100, 50}}) {
    SCOPED_TRACE(sizes.size() - 1);
    at::manual_seed(8);
    auto layers = random_layers(sizes);
    const size_t cut = layers.size() - 2;              // the layer whose units are cut
    layers[cut].bias.narrow(0, 10, 37).fill_(-100.0);  // 37 units that never fire: not a multiple of 32 left
    auto mlp = PackedMlp::make(layers, precision);
    if (!mlp) GTEST_SKIP() << "built without oneDNN";
    const int64_t rows = 70;
    at::Tensor x = at::randn({rows, 20});
    at::Tensor h = at::empty({rows, 100});
    mlp->hidden(x.data_ptr<float>(), rows, h.data_ptr<float>());
    std::vector<PackedMlp::Layer> head(layers.begin(), layers.end() - 1);
    EXPECT_LT((h.to(at::kDouble) - reference(head, x)).abs().max().item<double>(), tolerance);
    std::vector<uint8_t> used(100, 0);
    cpu::kernels().mark_positive(h.data_ptr<float>(), rows, 100, used.data());
    std::vector<int32_t> active;
    for (int32_t i = 0; i < 100; ++i)
      if (used[i]) active.push_back(i);
    ASSERT_LE(active.size(), 63u);
    ASSERT_GT(active.size(), 40u);
    at::Tensor got = at::empty({rows, 50});
    mlp->restrict_last(active)->forward(x.data_ptr<float>(), rows, got.data_ptr<float>());
    const at::Tensor expect = reference(layers, x);
    EXPECT_LT((got.to(at::kDouble) - expect).abs().max().item<double>(), tolerance);
    // Leaving out a unit that fires changes the result: the subset is really what runs.
    active.erase(active.begin() + 3);
    mlp->restrict_last(active)->forward(x.data_ptr<float>(), rows, got.data_ptr<float>());
    EXPECT_GT((got.to(at::kDouble) - expect).abs().max().item<double>(), 10 * tolerance);
  }
}

TEST(PackedMlp, RestrictedLastLayerEqualsTheWholeOneFloat32) { check_restricted_last(Precision::kFloat32, 1e-4); }
TEST(PackedMlp, RestrictedLastLayerEqualsTheWholeOneBFloat16x3) {
  LATENT_SKIP_WITHOUT_BF16();
  check_restricted_last(Precision::kBFloat16x3, 1e-4);
}

TEST(PackedMlp, BFloat16WithoutBFloat16InstructionsIsAClearError) {
  if (cpu::features().bf16) GTEST_SKIP() << "this CPU has bfloat16 dot products (cap it: LATENT_MAX_CPU_ISA=avx512)";
  const auto layers = random_layers({8, 16, 4});
  for (Precision p : {Precision::kBFloat16, Precision::kBFloat16x3})
    EXPECT_ERROR_WITH(PackedMlp::make(layers, p), "needs bfloat16 dot products (AVX512-BF16 or AMX)");
}

TEST(Kernels, SplitBFloat16x3HoldsTheValueInTwoParts) {
  for (const cpu::Kernels* k : cpu::variants()) {
    SCOPED_TRACE(cpu::isa_name(k->isa));
    at::manual_seed(9);
    at::Tensor x = at::randn({3, 37}) * at::exp(at::randn({3, 37}) * 3);  // magnitudes over many octaves
    const int32_t cols[] = {5, 0, 36, 5};
    constexpr int kPadded = 6;  // two zero columns after the four taken
    std::vector<uint16_t> hi(3 * kPadded, 0xffff), lo(hi), hi_all(3 * 40, 0xffff), lo_all(hi_all);
    k->split_bf16x3(x.data_ptr<float>(), 3, 37, cols, 4, kPadded, hi.data(), lo.data());
    k->split_bf16x3(x.data_ptr<float>(), 3, 37, nullptr, 37, 40, hi_all.data(), lo_all.data());
    auto value = [](uint16_t h) {
      const uint32_t u = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return static_cast<double>(f);
    };
    for (int r = 0; r < 3; ++r) {
      for (int i = 0; i < 4; ++i) {
        const double v = x[r][cols[i]].item<double>();
        const uint16_t h = hi[r * kPadded + i], l = lo[r * kPadded + i];
        EXPECT_LE(std::abs(value(h) - v), std::abs(v) * std::ldexp(1.0, -8)) << "hi is v rounded to 8 bits";
        EXPECT_LE(std::abs(value(h) + value(l) - v), std::abs(v) * std::ldexp(1.0, -16)) << r << "," << i;
        EXPECT_EQ(h, hi_all[r * 40 + cols[i]]);  // the same split with and without a gather
        EXPECT_EQ(l, lo_all[r * 40 + cols[i]]);
      }
      for (int i = 4; i < kPadded; ++i) EXPECT_EQ(hi[r * kPadded + i] | lo[r * kPadded + i], 0) << "padding is zero";
      for (int i = 37; i < 40; ++i) EXPECT_EQ(hi_all[r * 40 + i] | lo_all[r * 40 + i], 0) << "padding is zero";
    }
    std::vector<float> gathered(3 * kPadded, 1.0f);
    k->gather_columns(x.data_ptr<float>(), 3, 37, cols, 4, kPadded, gathered.data());
    for (int r = 0; r < 3; ++r)
      for (int i = 0; i < kPadded; ++i) EXPECT_EQ(gathered[r * kPadded + i], i < 4 ? x[r][cols[i]].item<float>() : 0.0f);
  }
}

}  // namespace
}  // namespace latent
