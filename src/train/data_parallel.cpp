// The parts of data-parallel training that do not talk to the network: where a process stands in
// its job (the launchers' variables), which rows of a batch it trains on, and the gradient buckets
// that autograd fills (GradientSync). The process group itself is in gloo_communicator.cpp.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <charconv>
#include <cstdlib>
#include <mutex>

#include "latent/distributed.h"
#include "latent/error.h"
#include "latent/json.h"

namespace latent {
namespace {

const char* env_value(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int lo, int hi, int fallback) {
  const char* v = env_value(name);
  if (!v) return fallback;
  const std::string text(v);
  int out = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  // Slurm writes counts per node as "2(x3)": the leading number is this node's.
  const bool slurm_repeat = end != text.data() + text.size() && *end == '(';
  if (ec != std::errc() || (end != text.data() + text.size() && !slurm_repeat) || out < lo || out > hi)
    throw Error(std::string(name) + "=" + text_excerpt(text, 40) + ": must be an integer from " + std::to_string(lo) + " to " +
                std::to_string(hi));
  return out;
}

}  // namespace

RankInfo rank_info_from_environment() {
  RankInfo r;
  constexpr int kMostRanks = 1 << 16;
  if (env_value("WORLD_SIZE")) {  // torchrun, `latent train --nproc`, or a hand-written launch
    r.world = env_int("WORLD_SIZE", 1, kMostRanks, 1);
    if (r.world > 1 && !env_value("RANK")) throw Error("WORLD_SIZE is set but RANK is not: every process needs its rank");
    r.rank = env_int("RANK", 0, r.world - 1, 0);
    r.local_world = env_int("LOCAL_WORLD_SIZE", 1, r.world, 1);
    r.local_rank = env_int("LOCAL_RANK", 0, r.local_world - 1, 0);
    const char* launcher = env_value("LATENT_LAUNCHER");
    r.launcher = launcher ? launcher : env_value("TORCHELASTIC_RUN_ID") ? "torchrun" : "environment";
  } else if (env_value("SLURM_NTASKS") && (env_value("SLURM_STEP_ID") || env_value("SLURM_STEPID"))) {  // srun
    r.world = env_int("SLURM_NTASKS", 1, kMostRanks, 1);
    r.rank = env_int("SLURM_PROCID", 0, r.world - 1, 0);
    r.local_world = env_int("SLURM_NTASKS_PER_NODE", 1, r.world, env_int("SLURM_TASKS_PER_NODE", 1, r.world, 1));
    r.local_rank = env_int("SLURM_LOCALID", 0, r.local_world - 1, 0);
    r.launcher = "slurm";
    if (r.world > 1 && !env_value("MASTER_ADDR")) {
      const char* nodes = env_value("SLURM_NODELIST");
      const std::string list = nodes ? nodes : "";
      if (list.empty() || list.find_first_of("[,") != std::string::npos)
        throw Error(
            "under Slurm, set MASTER_ADDR to the first host of the job: export MASTER_ADDR=$(scontrol show hostnames "
            "\"$SLURM_NODELIST\" | head -n 1)");
      r.master_addr = list;
    }
  }
  if (const char* addr = env_value("MASTER_ADDR")) r.master_addr = addr;
  r.master_port = env_int("MASTER_PORT", 1, 65535, r.master_port);
  if (r.world == 1) r.launcher.clear();
  return r;
}

at::Tensor BatchRows::take(const at::Tensor& whole, int64_t dim) const {
  if (world == 1) return whole;
  return whole.slice(dim, rank, rows, world);
}

at::Tensor Communicator::gather_batch(const at::Tensor& local, const BatchRows& rows) {
  if (world() == 1) return local;
  std::vector<int64_t> counts, offsets;
  int64_t at = 0;
  for (int r = 0; r < world(); ++r) {
    counts.push_back(BatchRows{r, world(), rows.rows}.count());
    offsets.push_back(at);
    at += counts.back();
  }
  at::Tensor all = allgather_rows(local.contiguous(), counts);  // rank 0's rows, then rank 1's, ...
  at::Tensor order = at::empty({rows.rows}, at::kLong);
  int64_t* o = order.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows.rows; ++i) o[i] = offsets[i % world()] + i / world();
  return all.index_select(0, order);
}

std::vector<int64_t> split_examples(int64_t n, int64_t chunk, int world) {
  chunk = std::max<int64_t>(1, chunk);
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t per = (chunks + world - 1) / world * chunk;
  std::vector<int64_t> counts;
  for (int r = 0; r < world; ++r) {
    const int64_t lo = std::min(n, r * per), hi = std::min(n, lo + per);
    counts.push_back(hi - lo);
  }
  return counts;
}

// ---- GradientSync -------------------------------------------------------------------------------

struct GradientSync::Impl {
  struct Bucket {
    at::Tensor flat;
    size_t params = 0, pending = 0;
  };
  Communicator& comm;
  at::Tensor all;               // every bucket, one after another: one all-reduce when nothing overlapped
  std::vector<Bucket> buckets;  // in the order the backward pass finishes them
  std::vector<size_t> bucket_of;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: they carry the hooks
  std::mutex mutex;
  size_t next = 0;    // buckets launch in order, so every rank's collectives match
  int64_t grads = 0;  // all's numbers that are gradients; then kExtra slots that ride with the last bucket
  double share = 1;
  int64_t bytes = 0;

  explicit Impl(Communicator& c) : comm(c) {}

  void ready(size_t param) {
    std::lock_guard<std::mutex> lock(mutex);
    Bucket& b = buckets[bucket_of[param]];
    if (b.pending > 0) --b.pending;
    // The last bucket waits for finish(): it carries the extra numbers (the loss), and its
    // gradients are the backward pass's last anyway.
    while (next + 1 < buckets.size() && buckets[next].pending == 0) launch(next++);
  }
  void launch(size_t i) {
    if (share != 1) buckets[i].flat.mul_(share);
    comm.allreduce_async(buckets[i].flat);
  }
};

namespace {
class BucketReadyHook : public torch::autograd::FunctionPostHook {
 public:
  BucketReadyHook(GradientSync::Impl* sync, size_t param) : sync_(sync), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    sync_->ready(param_);
    return outputs;
  }

 private:
  GradientSync::Impl* sync_;
  size_t param_;
};
}  // namespace

GradientSync::GradientSync(Communicator& comm, const std::vector<at::Tensor>& params, int64_t bucket_bytes)
    : impl_(std::make_unique<Impl>(comm)) {
  Impl& s = *impl_;
  s.bucket_of.assign(params.size(), 0);
  // Last parameters first: the backward pass produces their gradients first.
  std::vector<std::vector<size_t>> groups;
  int64_t bytes_in_group = 0;
  for (size_t i = params.size(); i-- > 0;) {
    const at::Tensor& p = params[i];
    if (p.scalar_type() != at::kFloat || !p.device().is_cpu()) throw Error("distributed training needs float32 CPU parameters");
    if (groups.empty() || bytes_in_group >= bucket_bytes) {
      groups.emplace_back();
      bytes_in_group = 0;
    }
    groups.back().push_back(i);
    bytes_in_group += p.numel() * 4;
  }
  int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  s.grads = total;
  s.all = at::zeros({total + kExtra}, at::kFloat);
  int64_t start = 0;
  for (const auto& group : groups) {
    int64_t numel = 0;
    for (size_t i : group) numel += params[i].numel();
    Impl::Bucket b;
    const bool last = &group == &groups.back();
    b.flat = s.all.narrow(0, start, numel + (last ? kExtra : 0));
    start += numel;
    b.params = group.size();
    int64_t offset = 0;
    for (size_t i : group) {
      at::Tensor p = params[i];
      p.mutable_grad() = b.flat.narrow(0, offset, p.numel()).view(p.sizes());
      offset += p.numel();
      s.bucket_of[i] = s.buckets.size();
    }
    s.bytes += numel * 4;
    s.buckets.push_back(std::move(b));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].requires_grad()) continue;
    std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(params[i]);
    acc->add_post_hook(std::make_unique<BucketReadyHook>(impl_.get(), i));
    s.accumulators.push_back(std::move(acc));
  }
}

GradientSync::~GradientSync() {
  for (auto& acc : impl_->accumulators) acc->post_hooks().clear();
}

void GradientSync::begin(double share) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->share = share;
  impl_->next = 0;
  for (auto& b : impl_->buckets) b.pending = b.params;
}

std::vector<double> GradientSync::finish(const std::vector<double>& extra) {
  if (extra.size() > static_cast<size_t>(kExtra)) throw Error("GradientSync::finish: more than 16 extra numbers");
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    float* slots = s.all.data_ptr<float>() + s.grads;
    auto fill_extra = [&] {
      for (int64_t i = 0; i < kExtra; ++i) slots[i] = i < static_cast<int64_t>(extra.size()) ? static_cast<float>(extra[i]) : 0.f;
    };
    if (s.next == 0) {  // nothing overlapped (the fused MLP step writes .grad() itself): one all-reduce of everything
      if (s.share != 1) s.all.narrow(0, 0, s.grads).mul_(s.share);
      fill_extra();
      s.comm.allreduce_async(s.all);
      s.next = s.buckets.size();
    }
    while (s.next + 1 < s.buckets.size()) s.launch(s.next++);  // buckets whose parameters the step did not use
    if (s.next + 1 == s.buckets.size()) {
      Impl::Bucket& b = s.buckets.back();
      if (s.share != 1) b.flat.narrow(0, 0, b.flat.numel() - kExtra).mul_(s.share);
      fill_extra();
      s.comm.allreduce_async(b.flat);
      s.next = s.buckets.size();
    }
  }
  s.comm.wait_all();
  const float* slots = s.all.data_ptr<float>() + s.grads;
  return std::vector<double>(slots, slots + extra.size());
}

int64_t GradientSync::bytes_per_step() const { return impl_->bytes + kExtra * 4; }

}  // namespace latent
