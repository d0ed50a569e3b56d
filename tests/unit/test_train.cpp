// Training: resume equivalence (end of epoch and Ctrl-C mid-epoch), determinism, divergence.
#include <ATen/ATen.h>

#include "latent/checkpoint.h"
#include "latent/npy.h"
#include "latent/train.h"
#include "test_util.h"

namespace latent {
namespace {

using test::TempDir;

ModelConfig small_model() { return ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [16], "latent": 3})"); }

DataSpec make_data(const TempDir& dir) {
  at::manual_seed(0);
  at::Tensor x = (at::rand({300, 6, 6}) * 255).to(at::kByte);
  npy_save(dir / "x.npy", x);
  DataSpec spec;
  spec.source = dir / "x.npy";
  spec.test_fraction = 0.2;
  return spec;
}

TrainOptions options(const std::string& out, int64_t epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.threads = 1;
  o.seed = 42;
  o.binarize = true;
  o.kl_warmup = 2;
  o.progress = false;
  o.out = out;
  return o;
}

// Metrics without the timing fields.
nlohmann::json numbers(nlohmann::json metrics) {
  for (auto& m : metrics) {
    m.erase("samples_per_s");
    m.erase("wall_s");
  }
  return metrics;
}

void expect_same_parameters(const std::string& a, const std::string& b) {
  LoadedCheckpoint ca = checkpoint_load(a), cb = checkpoint_load(b);
  auto pa = named_parameters(*ca.model), pb = named_parameters(*cb.model);
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i].second, pb[i].second)) << pa[i].first;
}

TEST(Train, ResumeFromAnEpochCheckpointGivesTheUninterruptedRun) {
  TempDir dir;
  DataSpec data = make_data(dir);
  for (bool fused : {true, false}) {
    TrainOptions full = options(dir / "full", 3), part = options(dir / "part", 1);
    full.fused = part.fused = fused;
    TrainResult a = train(small_model(), data, full);
    train(small_model(), data, part);
    TrainResult b = train_resume(dir / "part/model.safetensors", 3, "", false);
    EXPECT_EQ(numbers(checkpoint_load(a.checkpoint).info.metrics), numbers(checkpoint_load(b.checkpoint).info.metrics));
    expect_same_parameters(a.checkpoint, b.checkpoint);
    EXPECT_EQ(checkpoint_load(b.checkpoint).info.metrics.size(), 3u);
  }
}

TEST(Train, InterruptMidEpochSavesAndResumesExactly) {
  TempDir dir;
  DataSpec data = make_data(dir);
  TrainResult a = train(small_model(), data, options(dir / "full", 2));
  request_stop();  // as Ctrl-C would: the loop stops after its next step
  TrainResult cut = train(small_model(), data, options(dir / "cut", 2));
  clear_stop_request();
  EXPECT_TRUE(cut.interrupted);
  LoadedCheckpoint mid = checkpoint_load(cut.checkpoint);
  EXPECT_EQ(mid.info.state["step_in_epoch"], 1);
  EXPECT_EQ(mid.info.metrics.size(), 0u);
  TrainResult b = train_resume(cut.checkpoint, 0, "", false);
  EXPECT_FALSE(b.interrupted);
  EXPECT_EQ(numbers(checkpoint_load(a.checkpoint).info.metrics), numbers(checkpoint_load(b.checkpoint).info.metrics));
  expect_same_parameters(a.checkpoint, b.checkpoint);
}

// A watcher sees every step and epoch with the model as it is, can read it, and can stop the run
// (which then saves and resumes exactly, as after Ctrl-C).
TEST(Train, AnObserverSeesEveryStepAndCanStopTheRun) {
  struct Watcher : TrainObserver {
    std::vector<StepReport> steps;
    std::vector<nlohmann::json> epochs;
    int64_t stop_at = -1;
    double first_weight = 0;
    bool on_step(const StepReport& r, ModelImpl& model) override {
      steps.push_back(r);
      first_weight = named_parameters(model).front().second.flatten()[0].item<double>();
      return r.global_step != stop_at;
    }
    void on_epoch(const nlohmann::json& record, ModelImpl&) override { epochs.push_back(record); }
  };
  TempDir dir;
  DataSpec data = make_data(dir);
  TrainOptions o = options(dir / "full", 2);
  auto all = std::make_shared<Watcher>();
  o.observer = all;
  const TrainResult full = train(small_model(), data, o);
  const int64_t per_epoch = (240 + 31) / 32;  // 300 examples, 20% held out, batches of 32
  ASSERT_EQ(all->steps.size(), static_cast<size_t>(2 * per_epoch));
  EXPECT_EQ(all->steps.back().global_step, 2 * per_epoch);
  EXPECT_EQ(all->steps.back().epoch, 1);
  EXPECT_EQ(all->steps.back().step_in_epoch, per_epoch);
  EXPECT_EQ(all->steps.back().steps_per_epoch, per_epoch);
  ASSERT_EQ(all->steps.front().terms.size(), 2u);
  EXPECT_EQ(all->steps.front().terms[0].first, "recon");
  EXPECT_NEAR(all->steps.front().loss, all->steps.front().terms[0].second, 1e-3) << "KL weight 0 at the first step of warm-up";
  ASSERT_EQ(all->epochs.size(), 2u);
  EXPECT_EQ(all->epochs[1]["epoch"], 2);
  EXPECT_TRUE(all->epochs[1].contains("test_elbo"));
  LoadedCheckpoint last = checkpoint_load(full.checkpoint);
  EXPECT_EQ(all->first_weight, named_parameters(*last.model).front().second.flatten()[0].item<double>())
      << "the watcher saw the model the last step left";

  TrainOptions cut_options = options(dir / "cut", 2);
  auto stopper = std::make_shared<Watcher>();
  stopper->stop_at = per_epoch + 3;
  cut_options.observer = stopper;
  const TrainResult cut = train(small_model(), data, cut_options);
  EXPECT_TRUE(cut.interrupted);
  EXPECT_EQ(stopper->steps.size(), static_cast<size_t>(per_epoch + 3));
  EXPECT_EQ(checkpoint_load(cut.checkpoint).info.state["global_step"], per_epoch + 3);
  const TrainResult resumed = train_resume(cut.checkpoint, 0, "", false);
  EXPECT_EQ(numbers(checkpoint_load(full.checkpoint).info.metrics), numbers(checkpoint_load(resumed.checkpoint).info.metrics));
  expect_same_parameters(full.checkpoint, resumed.checkpoint);
}

TEST(Train, WritesMetricsPicturesAndLearns) {
  TempDir dir;
  DataSpec data = make_data(dir);
  TrainResult r = train(small_model(), data, options(dir / "run", 3));
  for (const char* f : {"model.safetensors", "metrics.jsonl", "samples.png", "reconstructions.png"})
    EXPECT_TRUE(std::filesystem::exists(dir / ("run/" + std::string(f)))) << f;
  const nlohmann::json m = checkpoint_load(r.checkpoint).info.metrics;
  ASSERT_EQ(m.size(), 3u);
  for (const char* key :
       {"train_elbo", "train_recon", "train_kl", "test_elbo", "test_recon", "test_kl", "active_units", "samples_per_s", "wall_s"})
    EXPECT_TRUE(m[2].contains(key)) << key;
  EXPECT_GT(m[2]["train_elbo"].get<double>(), m[0]["train_elbo"].get<double>());
  EXPECT_NEAR(m[0]["test_elbo"].get<double>(), -(m[0]["test_recon"].get<double>() + m[0]["test_kl"].get<double>()), 1e-9);
}

TEST(Train, DivergenceStopsWithAClearMessageAndKeepsTheLastCheckpoint) {
  TempDir dir;
  at::Tensor x = at::randn({200, 4});
  npy_save(dir / "t.npy", x);
  DataSpec data;
  data.source = dir / "t.npy";
  ModelConfig g = ModelConfig::from_text_or_file(
      R"({"type": "mlp_vae", "hidden": [8], "latent": 2, "likelihood": "gaussian", "sigma": 0.001})");
  TrainOptions o = options(dir / "run", 1);
  o.binarize = false;
  o.kl_warmup = 0;
  train(g, data, o);  // one good epoch: the checkpoint that must survive
  o.epochs = 50;
  o.adam.lr = 1e6;
  try {
    train(g, data, o);
    FAIL() << "expected divergence";
  } catch (const TrainingDiverged& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("training diverged at epoch"), std::string::npos) << msg;
    EXPECT_NE(msg.find("try a lower --lr"), std::string::npos) << msg;
  }
  // The checkpoint left behind is complete, loadable and from a finished epoch.
  LoadedCheckpoint ck = checkpoint_load(dir / "run/model.safetensors");
  EXPECT_EQ(ck.info.state["step_in_epoch"], 0);
  for (auto& [n, p] : named_parameters(*ck.model)) EXPECT_TRUE(at::isfinite(p).all().item<bool>()) << n;
}

TEST(Train, RejectsDataThatDoesNotFitTheLikelihood) {
  TempDir dir;
  npy_save(dir / "t.npy", at::randn({20, 3}));
  DataSpec data;
  data.source = dir / "t.npy";
  EXPECT_ERROR_WITH(train(small_model(), data, options(dir / "r", 1)), "bernoulli needs data in [0, 1]");
}

}  // namespace
}  // namespace latent

namespace latent {
namespace {

TEST(Train, IwaeObjectiveAndFreeBitsTrainAndRecordTheirSettings) {
  TempDir dir;
  DataSpec data = make_data(dir);
  TrainOptions o = options(dir / "iwae", 3);
  o.kl_warmup = 0;
  o.objective = "iwae";
  o.iwae_k = 4;
  TrainResult r = train(small_model(), data, o);
  const nlohmann::json m = checkpoint_load(r.checkpoint).info.metrics;
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0]["objective"], "iwae");
  EXPECT_GT(m[2]["train_elbo"].get<double>(), m[0]["train_elbo"].get<double>());
  // The IWAE bound is at least as tight as the ELBO: its loss is below the one-sample -ELBO on average.
  EXPECT_LT(m[2]["train_loss"].get<double>(), -m[2]["train_elbo"].get<double>() + 1.0);

  TrainOptions f = options(dir / "fb", 2);
  f.free_bits = 0.5;
  f.kl_warmup = 0;
  f.kl_cycle = 1;
  EXPECT_NO_THROW(train(small_model(), data, f));
  EXPECT_EQ(checkpoint_load(dir / "fb/model.safetensors").info.train["free_bits"], 0.5);
}

TEST(Train, RejectsOptionsThatDoNotApplyTogether) {
  TempDir dir;
  DataSpec data = make_data(dir);
  TrainOptions o = options(dir / "x", 1);
  o.objective = "iwae";
  EXPECT_ERROR_WITH(train(small_model(), data, o), "do not apply to --objective iwae");  // kl_warmup is set
  o = options(dir / "x", 1);
  o.kl_cycle = 2;
  EXPECT_ERROR_WITH(train(small_model(), data, o), "either --kl-warmup or --kl-cycle");
  o = options(dir / "x", 1);
  o.objective = "vq";
  EXPECT_ERROR_WITH(train(small_model(), data, o), "objective must be elbo or iwae");
}

}  // namespace
}  // namespace latent
