#include "explorer_server.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <httplib.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "latent/error.h"
#include "latent/json.h"
#include "molecule_api.h"
#include "web_assets.h"

namespace latent::server {
namespace {

using nlohmann::json;

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", text_excerpt(message, 2000)}}.dump(), "application/json");
}

// Each worker thread takes LibTorch's thread count (and so OpenMP's, which BLAS reads) once: a new
// thread otherwise starts with one OpenMP thread per core, and 64 request threads would each wake a
// team of spinning threads for every matrix product.
void init_request_thread() {
  static thread_local const bool done = [] {
    at::init_num_threads();
    sched_param none{};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
    return true;
  }();
  (void)done;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

int64_t query_int(const httplib::Request& req, const std::string& key, int64_t fallback) {
  if (!req.has_param(key.c_str())) return fallback;
  const std::string v = req.get_param_value(key.c_str());
  int64_t n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty())
    throw ApiError(400, "query parameter '" + key + "' must be an integer");
  return n;
}

json body_json(const httplib::Request& req) {
  if (req.body.empty()) return json::object();
  try {
    return parse_json(req.body, "the request body");
  } catch (const Error& e) {  // malformed, too deep, or numbers beyond double's range
    throw ApiError(400, e.what());
  }
}

// json::dump() checks every byte of a string for escapes; a decode reply is mostly base64 pixels,
// which never need one. They are moved out before dumping and spliced back in after.
void move_pixels_out(json& j, std::vector<std::string>& blobs) {
  if (j.is_object()) {
    auto it = j.find("pixels");
    if (it != j.end() && it->is_string()) {
      blobs.push_back(std::move(it->get_ref<std::string&>()));
      *it = "\u0001" + std::to_string(blobs.size() - 1);
    }
    for (auto& [key, value] : j.items()) move_pixels_out(value, blobs);
  } else if (j.is_array()) {
    for (auto& value : j) move_pixels_out(value, blobs);
  }
}

std::string to_body(json j) {
  std::vector<std::string> blobs;
  move_pixels_out(j, blobs);
  std::string text = j.dump();
  if (blobs.empty()) return text;
  std::string out;
  size_t size = text.size();
  for (const auto& b : blobs) size += b.size();
  out.reserve(size);
  size_t pos = 0;
  for (size_t k = 0; k < blobs.size(); ++k) {
    const std::string mark = "\"\\u0001" + std::to_string(k) + "\"";  // how dump() writes "\x01<k>"
    const size_t at = text.find(mark, pos);
    out.append(text, pos, at - pos).append("\"").append(blobs[k]).append("\"");
    pos = at + mark.size();
  }
  return out.append(text, pos, std::string::npos);
}

// Lets `slots` threads in at a time, in the order they arrived. Request threads outnumber cores many
// times over; the scheduler would run their compute in no particular order, and requests overtaken
// again and again make the latency tail.
class FifoGate {
 public:
  explicit FifoGate(int slots) : free_(slots) {}
  void enter() {
    std::unique_lock lock(mutex_);
    if (free_ > 0 && queue_.empty()) {
      --free_;
      return;
    }
    Waiter me;
    queue_.push_back(&me);
    me.cv.wait(lock, [&] { return me.admitted; });
  }
  void leave() {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) {
      ++free_;
      return;
    }
    Waiter* next = queue_.front();
    queue_.pop_front();
    next->admitted = true;
    next->cv.notify_one();
  }

 private:
  struct Waiter {
    std::condition_variable cv;
    bool admitted = false;
  };
  std::mutex mutex_;
  std::deque<Waiter*> queue_;
  int free_;
};

// httplib serves each connection on one thread for as long as it stays open, so a fixed pool of N
// threads is N slow or idle clients away from serving nobody: 70 connections each sending a header
// line a second held a 64-thread pool and made every other request wait ~10 s. This pool starts a
// thread whenever a connection arrives and none is idle, up to `most`; threads idle for 10 s end,
// down to `keep`. Past `most` connections wait in line, in arrival order.
class GrowingPool : public httplib::TaskQueue {
 public:
  GrowingPool(size_t keep, size_t most) : keep_(keep), most_(std::max<size_t>(1, most)) {}
  ~GrowingPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(fn));
    if (idle_ >= jobs_.size() || threads_ >= most_) {
      work_.notify_one();
      return;
    }
    ++threads_;
    std::thread([this] { run(); }).detach();
  }

  void shutdown() override {
    std::unique_lock lock(mutex_);
    stop_ = true;
    work_.notify_all();
    done_.wait(lock, [&] { return threads_ == 0; });
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      ++idle_;
      const bool woken = work_.wait_for(lock, std::chrono::seconds(10), [&] { return stop_ || !jobs_.empty(); });
      --idle_;
      if (!jobs_.empty()) {
        std::function<void()> fn = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        fn();
        lock.lock();
        continue;
      }
      if (stop_ || (!woken && threads_ > keep_)) break;
    }
    --threads_;
    done_.notify_all();
  }

  const size_t keep_, most_;
  std::mutex mutex_;
  std::condition_variable work_, done_;
  std::deque<std::function<void()>> jobs_;
  size_t threads_ = 0, idle_ = 0;
  bool stop_ = false;
};

}  // namespace

struct ExplorerServer::Impl {
  // One of the two: an image VAE's API, or a SMILES VAE's (the Molecules view).
  // Swapped whole when the page makes a trained run the current model (atomic loads and stores; a
  // request keeps the one it began with).
  std::shared_ptr<ExplorerApi> images;
  std::unique_ptr<MoleculeApi> molecules;
  httplib::Server http;
  std::string host;
  int port = 0;
  socket_t listen_fd = -1;
  // httplib's stop() does nothing until listen has begun, so a stop that came first would be lost and
  // run() would then block for ever: both sides go through this lock.
  std::mutex run_mutex;
  bool started = false, stopped = false;
  std::atomic<bool> finished{false};
  std::atomic<bool> closing{false};  // event streams end
  // Decodes in arrival order, two per core (one per core left cores idle while a thread read or
  // wrote its socket): at 50 clients p99 3.6 against 3.9 ms ungated, bench/RESULTS.md.
  FifoGate gate{static_cast<int>(2 * std::max(1u, std::thread::hardware_concurrency()))};

  Impl(LoadedCheckpoint ck, const std::string& path, const ServeOptions& opt) : host(opt.host) {
    if (ck.info.model.type == "smiles_vae")
      molecules = std::make_unique<MoleculeApi>(std::move(ck), path);
    else
      images = std::make_shared<ExplorerApi>(std::move(ck), path, opt.limits, opt.precision);
  }
  std::shared_ptr<ExplorerApi> image_api() {
    std::shared_ptr<ExplorerApi> api = std::atomic_load(&images);
    if (!api) throw ApiError(404, "this explorer shows a molecule model: its routes are /api/molecules/...");
    return api;
  }
  MoleculeApi& molecule_api() {
    if (!molecules) throw ApiError(404, "this explorer shows an image model, not molecules");
    return *molecules;
  }

  // Every handler answers JSON; whatever a request does, the worst it gets is a 4xx/5xx reply.
  httplib::Server::Handler route(std::function<json(const httplib::Request&)> fn) {
    return [fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
      init_request_thread();
      try {
        res.set_content(to_body(fn(req)), "application/json");
        res.set_header("Cache-Control", "no-store");
      } catch (const ApiError& e) {
        send_error(res, e.status, e.what());
      } catch (const Error& e) {
        send_error(res, 400, e.what());
      } catch (const c10::Error& e) {
        send_error(res, 500, first_line(e.what_without_backtrace()));
      } catch (const std::exception& e) {
        send_error(res, 500, first_line(e.what()));
      }
    };
  }

  void mount(const ServeOptions& opt) {
    http.Get("/api/info", route([this](const auto&) { return molecules ? molecules->info() : image_api()->info(); }));
    http.Get("/api/molecules/plane", route([this](const auto& req) {
               return molecule_api().plane(req.has_param("property") ? req.get_param_value("property") : std::string("qed"),
                                           query_int(req, "limit", 2000));
             }));
    http.Post("/api/molecules/encode", route([this](const auto& req) { return molecule_api().encode(body_json(req)); }));
    http.Post("/api/molecules/decode", route([this](const auto& req) { return molecule_api().decode(body_json(req)); }));
    http.Post("/api/molecules/sample", route([this](const auto& req) { return molecule_api().sample(body_json(req)); }));
    http.Post("/api/molecules/walk", route([this](const auto& req) { return molecule_api().walk(body_json(req)); }));
    http.Post("/api/molecules/optimize", route([this](const auto& req) { return molecule_api().optimize(body_json(req)); }));
    http.Get("/api/metrics", route([this](const auto&) { return image_api()->metrics(); }));
    http.Get("/api/anomaly", route([this](const auto& req) {
               return image_api()->anomaly(req.has_param("score") ? req.get_param_value("score") : std::string("neg_elbo"));
             }));
    http.Get("/api/items", route([this](const auto& req) {
               return image_api()->items(query_int(req, "offset", 0), query_int(req, "limit", 32));
             }));
    const int64_t scatter = opt.limits.scatter;
    http.Get("/api/scatter",
             route([this, scatter](const auto& req) { return image_api()->scatter(query_int(req, "limit", scatter)); }));
    http.Post("/api/encode", route([this](const auto& req) { return image_api()->encode(body_json(req)); }));
    http.Post("/api/decode", [this, general = route([this](const auto& req) { return image_api()->decode(body_json(req)); })](
                                 const httplib::Request& req, httplib::Response& res) {
      init_request_thread();
      std::optional<std::string> text;
      gate.enter();
      try {
        text = image_api()->decode_text(req.body);
      } catch (const std::exception&) {  // the general path answers with the same error in JSON
      }
      gate.leave();
      if (!text) return general(req, res);
      res.body = std::move(*text);
      res.set_header("Content-Type", "application/json");
      res.set_header("Cache-Control", "no-store");
    });
    http.Post("/api/sample", route([this](const auto& req) { return image_api()->sample(body_json(req)); }));
    http.Post("/api/kl_steps", route([this](const auto& req) { return image_api()->kl_steps(body_json(req)); }));
    http.Post("/api/interpolate", route([this](const auto& req) { return image_api()->interpolate(body_json(req)); }));
    auto sd = [sd = opt.sd]() -> SdApi& {
      if (!sd) throw ApiError(404, "no Stable Diffusion autoencoder here: start latent serve with --vae FILE or --taesd FILE");
      return *sd;
    };
    http.Get("/api/sd/info", route([sd](const auto&) { return sd().info(); }));
    http.Post("/api/sd/encode", route([sd](const auto& req) { return sd().encode(body_json(req)); }));
    http.Post("/api/sd/decode", route([sd](const auto& req) { return sd().decode(body_json(req)); }));
    http.Post("/api/sd/interpolate", route([sd](const auto& req) { return sd().interpolate(body_json(req)); }));
    auto train = [train = opt.train]() -> TrainJobs& {
      if (!train) throw ApiError(404, "this explorer does not train: it shows a molecule model");
      return *train;
    };
    http.Get("/api/train", route([train](const auto&) { return train().status(); }));
    http.Post("/api/train/start", route([train](const auto& req) { return train().start(body_json(req)); }));
    http.Post("/api/train/(pause|resume|stop)",
              route([train](const auto& req) { return train().control(req.matches[1].str()); }));
    // A trained run becomes the model every tab shows.
    http.Post("/api/train/use", route([this, train, limits = opt.limits, precision = opt.precision](const auto& req) {
                const std::string path = train().checkpoint_of(body_json(req));
                if (!std::atomic_load(&images)) throw ApiError(404, "this explorer shows a molecule model");
                auto api = std::make_shared<ExplorerApi>(checkpoint_load(path), path, limits, precision);
                std::atomic_store(&images, api);
                return json{{"checkpoint", path}};
              }));
    http.Get("/api/train/events", route([train](const auto& req) {
               return train().events(query_int(req, "after", 0),
                                     static_cast<int>(std::clamp<int64_t>(query_int(req, "wait", 0), 0, 25000)));
             }));
    // Server-Sent Events: each event once, as it happens; a reconnect's Last-Event-ID resumes after it.
    http.Get("/api/train/stream", [this, train = opt.train](const httplib::Request& req, httplib::Response& res) {
      if (!train) return send_error(res, 404, "this explorer does not train: it shows a molecule model");
      int64_t after = 0;
      try {
        after = query_int(req, "after", 0);
        if (req.has_header("Last-Event-ID")) after = std::stoll(req.get_header_value("Last-Event-ID"));
      } catch (const std::exception&) {
        return send_error(res, 400, "'after' and Last-Event-ID must be event numbers");
      }
      res.set_header("Cache-Control", "no-store");
      res.set_chunked_content_provider("text/event-stream", [this, train, after](size_t, httplib::DataSink& sink) mutable {
        if (closing) return false;
        const json got = train->events(after, 1000);
        std::string text;
        for (const json& e : got["events"])
          text += "id: " + std::to_string(e["seq"].get<int64_t>()) + "\ndata: " + e.dump() + "\n\n";
        if (text.empty()) text = ": waiting\n\n";  // a comment: the connection is alive
        after = got["next"];
        return !closing && sink.write(text.data(), text.size());
      });
    });
    http.Get("/.*", [](const httplib::Request& req, httplib::Response& res) {
      const WebAsset* a = web_asset(req.path);
      if (a == nullptr) return send_error(res, 404, "not found: " + req.path);
      res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->content_type);
      res.set_header("Cache-Control", "no-cache");
    });
    // Replies httplib makes itself (no route, 413 for an oversize body, 400 for a bad request line)
    // get the same JSON shape as the API's own errors.
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const std::string message = res.status == 404   ? "no such route: " + req.method + " " + req.path
                                  : res.status == 413 ? "request body too large"
                                                      : "bad request (HTTP " + std::to_string(res.status) + ")";
      send_error(res, res.status, message);
    });
    http.set_payload_max_length(opt.max_body);
    http.set_read_timeout(5);
    http.set_write_timeout(5);
    http.set_keep_alive_max_count(1000);
    // Small JSON replies: without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to each.
    http.set_tcp_nodelay(true);
    http.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
    // httplib's default socket options set SO_REUSEPORT, which would let a second server bind the
    // same port and silently take half of its connections. Only SO_REUSEADDR (quick restarts).
    http.set_socket_options([this](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_fd = sock;
    });
    const size_t most = static_cast<size_t>(opt.threads);
    const size_t keep = std::min<size_t>(most, 2 * std::max(1u, std::thread::hardware_concurrency()) + 2);
    http.new_task_queue = [keep, most] { return new GrowingPool(keep, most); };
  }
};

ExplorerServer::ExplorerServer(LoadedCheckpoint checkpoint, const std::string& checkpoint_path, const ServeOptions& options)
    : impl_(std::make_unique<Impl>(std::move(checkpoint), checkpoint_path, options)) {
#ifdef __GLIBC__
  // Request bodies of megabytes (uploads, or a client's junk) are read into strings on many threads.
  // glibc raises its mmap threshold after each large block is freed, so later ones came from the
  // threads' heaps and stayed resident: 27 bodies of 4 MB kept 2.7 GB. A fixed threshold keeps every
  // block of 1 MB and up mapped, and returned when freed.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  if (options.threads < 1) throw Error("--threads must be at least 1");
  if (options.port < 0 || options.port > 65535) throw Error("--port must be between 0 and 65535");
  impl_->mount(options);
  if (options.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(options.host);
    if (impl_->port < 0) throw Error("cannot listen on " + options.host + " (is it an address of this machine?)");
  } else {
    if (!impl_->http.bind_to_port(options.host, options.port))
      throw Error("cannot listen on " + options.host + ":" + std::to_string(options.port) +
                  " (in use by another program? try --port 0 for any free port)");
    impl_->port = options.port;
  }
  // httplib listens with a backlog of 5: a burst of new connections (a page opening, 50 clients
  // starting at once) then waits out SYN retransmits of 1 s and more. Listening again on the bound
  // socket raises the backlog (Linux keeps the socket and applies the new value).
  if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, SOMAXCONN);
}

ExplorerServer::~ExplorerServer() { stop(); }

int ExplorerServer::port() const { return impl_->port; }

const ExplorerApi& ExplorerServer::api() const { return *impl_->image_api(); }

bool ExplorerServer::shows_molecules() const { return impl_->molecules != nullptr; }

std::string ExplorerServer::address() const {
  const std::string host = impl_->host.find(':') != std::string::npos ? "[" + impl_->host + "]" : impl_->host;
  return "http://" + host + ":" + std::to_string(impl_->port) + "/";
}

void ExplorerServer::run() {
  {
    std::lock_guard<std::mutex> lock(impl_->run_mutex);
    if (impl_->stopped) return;
    impl_->started = true;
  }
  impl_->http.listen_after_bind();
  impl_->finished = true;
}

void ExplorerServer::stop() {
  impl_->closing = true;
  {
    std::lock_guard<std::mutex> lock(impl_->run_mutex);
    impl_->stopped = true;
    if (!impl_->started) return;
  }
  // run() has begun: wait for httplib to enter its accept loop (microseconds), then stop it.
  while (!impl_->http.is_running() && !impl_->finished) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
}

}  // namespace latent::server
