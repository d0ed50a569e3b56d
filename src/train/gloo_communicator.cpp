// One rank's end of a job on c10d: a TCPStore on rank 0 for the rendezvous and the heartbeats,
// and ProcessGroupGloo for the collectives (the process group PyTorch's DDP uses on CPUs).
//
// Faults: each rank beats a counter in the store every 250 ms from a thread of its own. A rank
// whose counter stops for DistOptions::lost_after_s (3 s once a collective has failed, which is
// how a killed peer first shows) is named and this process exits at once; a lost rank 0 shows as
// the store going away. Gloo's own timeout stays long: evaluation on rank 0 keeps the others
// waiting, and a hung but living rank is rarer than a dead one.
#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(LATENT_QUIET_GLOG) && defined(C10_USE_GLOG)
#include <glog/logging.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "latent/distributed.h"
#include "latent/error.h"
#include "latent/json.h"

namespace latent {
namespace {

using Clock = std::chrono::steady_clock;

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (end == v || *end || !(s > 0) || s > 86400)
    throw Error(std::string(name) + "=" + text_excerpt(v, 30) + ": must be seconds in (0, 86400]");
  return s;
}

std::string first_line(const std::string& what) { return text_excerpt(what.substr(0, what.find('\n')), 200); }

// The first place two agreements differ, as "key.key: A vs B" (values shortened).
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& path = "") {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items()) {
      const std::string here = path.empty() ? key : path + "." + key;
      if (!b.contains(key)) return here + ": set on one rank only";
      const std::string d = first_difference(value, b[key], here);
      if (!d.empty()) return d;
    }
    for (const auto& [key, value] : b.items())
      if (!a.contains(key)) return (path.empty() ? key : path + "." + key) + ": set on one rank only";
    return "";
  }
  if (a == b) return "";
  return (path.empty() ? "value" : path) + ": " + json_excerpt(a, 60) + " vs " + json_excerpt(b, 60);
}

// The local address that routes to `host` (where Gloo should listen so the others can reach it).
std::string route_address(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
    throw Error("MASTER_ADDR=" + host + ": not a host name or address this machine can resolve");
  std::string out;
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_in me{};
    socklen_t len = sizeof(me);
    char buf[INET_ADDRSTRLEN] = {};
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) == 0 && inet_ntop(AF_INET, &me.sin_addr, buf, sizeof(buf)))
      out = buf;
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  if (out.empty()) throw Error("MASTER_ADDR=" + host + ": no route from this machine");
  return out;
}

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(const RankInfo& me, const DistOptions& options, const nlohmann::json& agreement) : me_(me), options_(options) {
#if defined(LATENT_QUIET_GLOG) && defined(C10_USE_GLOG)
    FLAGS_minloglevel = google::GLOG_FATAL;  // c10d's retries and failures: latent says what happened in one line
    FLAGS_logtostderr = false;
#endif
    options_.join_timeout_s = env_seconds("LATENT_DIST_JOIN_TIMEOUT", options_.join_timeout_s);
    options_.lost_after_s = env_seconds("LATENT_DIST_LOST_AFTER", options_.lost_after_s);
    where_ = me_.master_addr + ":" + std::to_string(me_.master_port);
    const auto join_timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.join_timeout_s * 1000));
    store_ = connect_store(join_timeout);
    const std::string key = "join/" + std::to_string(me_.rank);
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    const nlohmann::json mine = {{"host", host}, {"pid", static_cast<int64_t>(getpid())}, {"agreement", agreement}};
    store_->set(key, to_bytes(mine.dump()));
    wait_for_everyone(join_timeout);
    for (int r = 0; r < me_.world; ++r) {
      const nlohmann::json theirs = nlohmann::json::parse(from_bytes(store_->get("join/" + std::to_string(r))));
      hosts_.push_back(theirs.value("host", std::string("?")) + ", pid " + std::to_string(theirs.value("pid", int64_t{0})));
      const std::string d = first_difference(theirs["agreement"], agreement);
      if (!d.empty())
        throw Error("rank " + std::to_string(r) + " and rank " + std::to_string(me_.rank) + " disagree on what to train (" + d +
                    "): every rank must run the same model, data and options");
    }
    auto gloo = c10d::ProcessGroupGloo::Options::create(std::chrono::minutes(30));
    std::string iface = options_.iface;
    if (iface.empty())
      if (const char* e = std::getenv("GLOO_SOCKET_IFNAME")) iface = e;
    try {
      gloo->devices.push_back(
          iface.empty() ? c10d::ProcessGroupGloo::createDeviceForHostname(route_address(me_.master_addr, me_.master_port))
                        : c10d::ProcessGroupGloo::createDeviceForInterface(iface));
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store_), me_.rank,
                                                        me_.world, gloo);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(me_.rank) + ": could not connect to the other ranks" +
                  (iface.empty() ? "" : " on interface " + iface) + ": " + first_line(e.what()));
    }
    watchdog_ = std::thread([this] { watch(); });
  }

  ~GlooCommunicator() override { stop_watchdog(); }

  int rank() const override { return me_.rank; }
  int world() const override { return me_.world; }
  const RankInfo& info() const override { return me_; }

  void broadcast(const at::Tensor& t, int root) override {
    std::vector<at::Tensor> ts{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    wait(pg_->broadcast(ts, o));
  }
  void allreduce_sum(const at::Tensor& t) override {
    std::vector<at::Tensor> ts{t};
    bytes_ += t.numel() * static_cast<int64_t>(t.element_size());
    wait(pg_->allreduce(ts));
  }
  at::Tensor allgather_rows(const at::Tensor& local, const std::vector<int64_t>& counts) override {
    int64_t most = 0;
    for (int64_t c : counts) most = std::max(most, c);
    std::vector<int64_t> shape = local.sizes().vec();
    shape[0] = most;
    at::Tensor padded = at::zeros(shape, local.options());
    if (local.size(0) > 0) padded.narrow(0, 0, local.size(0)).copy_(local);
    std::vector<at::Tensor> in{padded};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < me_.world; ++r) out[0].push_back(at::empty_like(padded));
    wait(pg_->allgather(out, in));
    std::vector<at::Tensor> parts;
    for (int r = 0; r < me_.world; ++r) parts.push_back(out[0][r].narrow(0, 0, counts[r]));
    return at::cat(parts);
  }
  void barrier() override { wait(pg_->barrier()); }

  void allreduce_async(const at::Tensor& t) override {
    std::vector<at::Tensor> ts{t};
    bytes_ += t.numel() * static_cast<int64_t>(t.element_size());
    pending_.push_back(run([&] { return pg_->allreduce(ts); }));
  }
  void wait_all() override {
    auto works = std::move(pending_);
    pending_.clear();
    for (auto& w : works) wait(w);
  }

  double comm_seconds() const override { return comm_s_; }
  int64_t bytes_reduced() const override { return bytes_; }
  void set_loss_hint(const std::string& hint) override {
    std::lock_guard<std::mutex> lock(hint_mutex_);
    hint_ = hint;
  }
  void close() override {
    barrier();
    stop_watchdog();
  }

 private:
  static std::vector<uint8_t> to_bytes(const std::string& s) { return {s.begin(), s.end()}; }
  static std::string from_bytes(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

  // Under torchrun the agent hosts the store on MASTER_PORT for every attempt (its restarts), so
  // each attempt's keys live under their own prefix, as PyTorch's env:// rendezvous does.
  static bool agent_store() {
    const char* v = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    return v && std::string(v) == "True";
  }
  static std::string attempt_prefix() {
    const char* v = std::getenv("TORCHELASTIC_RESTART_COUNT");
    return std::string("latent/attempt_") + (v && *v ? v : "0");
  }

  c10::intrusive_ptr<c10d::Store> open_store(bool server, std::chrono::milliseconds timeout) const {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(me_.master_port);
    o.isServer = server;
    o.waitWorkers = false;
    o.timeout = timeout;
    return c10::make_intrusive<c10d::PrefixStore>(attempt_prefix(), c10::make_intrusive<c10d::TCPStore>(me_.master_addr, o));
  }

  c10::intrusive_ptr<c10d::Store> connect_store(std::chrono::milliseconds timeout) {
    try {
      return open_store(me_.rank == 0 && !agent_store(), timeout);
    } catch (const std::exception& e) {
      if (me_.rank == 0)
        throw Error("rank 0: could not open the rendezvous at " + where_ +
                    " (is the port in use? set MASTER_PORT): " + first_line(e.what()));
      throw Error("rank " + std::to_string(me_.rank) + ": rank 0 did not answer at " + where_ + " within " +
                  std::to_string(static_cast<int>(options_.join_timeout_s)) +
                  " s (is it running, with the same MASTER_ADDR and MASTER_PORT?)");
    }
  }

  void wait_for_everyone(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::vector<std::string> keys;
    for (int r = 0; r < me_.world; ++r) keys.push_back("join/" + std::to_string(r));
    while (!store_->check(keys)) {
      if (Clock::now() > deadline) {
        std::string missing, present;
        for (int r = 0; r < me_.world; ++r) (store_->check({keys[r]}) ? present : missing) += (r ? ", " : "") + std::to_string(r);
        auto trim = [](std::string s) { return s.rfind(", ", 0) == 0 ? s.substr(2) : s; };
        throw Error("timed out after " + std::to_string(static_cast<int>(options_.join_timeout_s)) + " s waiting for rank(s) " +
                    trim(missing) + " of " + std::to_string(me_.world) + " to join at " + where_ + " (arrived: " + trim(present) +
                    ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  template <class F>
  c10::intrusive_ptr<c10d::Work> run(F&& launch) {
    try {
      return launch();
    } catch (const std::exception& e) {
      failed(e.what());
    }
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work) {
    const auto t0 = Clock::now();
    try {
      work->wait();
    } catch (const std::exception& e) {
      failed(e.what());
    }
    comm_s_ += std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // A collective failed: a peer has gone (or the network has). Let the heartbeat name it.
  [[noreturn]] void failed(const std::string& what) {
    suspect_.store(true);
    std::unique_lock<std::mutex> lock(wake_mutex_);
    wake_.notify_all();
    wake_.wait_for(lock, std::chrono::duration<double>(options_.lost_after_s + 2));
    throw Error("rank " + std::to_string(me_.rank) + ": communication with the other ranks failed: " + first_line(what));
  }

  [[noreturn]] void lost(int rank, const std::string& why) {
    std::string hint;
    {
      std::lock_guard<std::mutex> lock(hint_mutex_);
      hint = hint_;
    }
    const std::string who = rank < static_cast<int>(hosts_.size()) ? " (" + hosts_[rank] + ")" : "";
    std::fprintf(stderr, "latent: error: rank %d of %d%s was lost: %s; rank %d stops%s%s\n", rank, me_.world, who.c_str(),
                 why.c_str(), me_.rank, hint.empty() ? "" : "; ", hint.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }

  void watch() {
    c10::intrusive_ptr<c10d::Store> store;
    try {
      store = open_store(false, std::chrono::seconds(5));
    } catch (const std::exception&) {
      if (!stopping_.load()) lost(0, "the rendezvous at " + where_ + " went away");
      return;
    }
    std::vector<int64_t> last(me_.world, -1);
    std::vector<Clock::time_point> moved(me_.world, Clock::now());
    const std::string mine = "beat/" + std::to_string(me_.rank);
    while (!stopping_.load()) {
      try {
        store->add(mine, 1);
        const auto now = Clock::now();
        const double limit = suspect_.load() ? std::min(3.0, options_.lost_after_s) : options_.lost_after_s;
        for (int r = 0; r < me_.world; ++r) {
          if (r == me_.rank) continue;
          const int64_t v = store->add("beat/" + std::to_string(r), 0);
          if (v != last[r]) {
            last[r] = v;
            moved[r] = now;
          } else if (std::chrono::duration<double>(now - moved[r]).count() > limit && !stopping_.load()) {
            char buf[64];
            std::snprintf(buf, sizeof(buf), "no heartbeat for %.0f s", limit);
            lost(r, buf);
          }
        }
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a job ending on an error elsewhere
        if (stopping_.load()) return;
        if (me_.rank != 0 || agent_store()) lost(0, "the rendezvous at " + where_ + " went away");
      }
      std::unique_lock<std::mutex> lock(wake_mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_.load(); });
    }
  }

  void stop_watchdog() {
    stopping_.store(true);
    wake_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  RankInfo me_;
  DistOptions options_;
  std::string where_;
  std::vector<std::string> hosts_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::vector<c10::intrusive_ptr<c10d::Work>> pending_;
  double comm_s_ = 0;
  int64_t bytes_ = 0;
  std::thread watchdog_;
  std::atomic<bool> stopping_{false}, suspect_{false};
  std::mutex hint_mutex_, wake_mutex_;
  std::condition_variable wake_;
  std::string hint_;
};

}  // namespace

bool distributed_available() { return true; }

std::unique_ptr<Communicator> Communicator::join(const RankInfo& me, const DistOptions& options,
                                                 const nlohmann::json& agreement) {
  return std::make_unique<GlooCommunicator>(me, options, agreement);
}

}  // namespace latent
