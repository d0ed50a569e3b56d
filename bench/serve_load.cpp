// Decode latency of an explorer-style server under load on loopback.
//
// C clients (threads, one keep-alive connection each) send R batch-decode requests in all, each
// {"z": [B codes of N(0, I)]} to POST /api/decode, and time every reply; then the 20x20 manifold
// grid (400 codes in one request) is timed on its own. Any non-200 reply counts as an error.
// The server is given by --port (latent serve, or bench/serve_pytorch.py: the same API).
//
//   serve_load --port 8080 [--clients 50] [--requests 10000] [--batch 16] [--grid 20]
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string decode_body(int64_t rows, int64_t latent, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  json z = json::array();
  for (int64_t r = 0; r < rows; ++r) {
    json row = json::array();
    for (int64_t k = 0; k < latent; ++k) row.push_back(normal(rng));
    z.push_back(row);
  }
  return json{{"z", z}}.dump();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Decode latency of the explorer's API under concurrent load"};
  std::string host = "127.0.0.1", name = "server";
  int port = 8080, clients = 50, requests = 10000, batch = 16, grid = 20, latent = 0;
  app.add_option("--host", host);
  app.add_option("--port", port)->required();
  app.add_option("--clients", clients)->capture_default_str();
  app.add_option("--requests", requests)->capture_default_str();
  app.add_option("--batch", batch, "codes per request")->capture_default_str();
  app.add_option("--grid", grid, "manifold grid side")->capture_default_str();
  app.add_option("--latent", latent, "latent size (default: from /api/info, or 20)");
  app.add_option("--name", name, "label for the output")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (latent == 0) {
    httplib::Client c(host, port);
    auto r = c.Get("/api/info");
    latent = r && r->status == 200 ? json::parse(r->body).value("latent", 20) : 20;
  }
  std::mt19937 rng(1);
  std::vector<std::string> bodies;
  for (int i = 0; i < 64; ++i) bodies.push_back(decode_body(batch, latent, rng));

  std::vector<std::vector<double>> latencies(clients);
  std::atomic<int> next{0}, errors{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client c(host, port);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      c.set_read_timeout(30);
      for (int i; (i = next++) < requests;) {
        const auto t0 = Clock::now();
        auto r = c.Post("/api/decode", bodies[i % bodies.size()], "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!r || r->status != 200) {
          if (errors++ < 5)
            std::fprintf(stderr, "error: %s\n",
                         r ? ("HTTP " + std::to_string(r->status)).c_str() : httplib::to_string(r.error()).c_str());
        }
        latencies[t].push_back(ms);
      }
    });
  }
  for (auto& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& v : latencies) all.insert(all.end(), v.begin(), v.end());

  httplib::Client c(host, port);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  const std::string grid_body = decode_body(static_cast<int64_t>(grid) * grid, latent, rng);
  std::vector<double> grid_ms;
  for (int i = 0; i < 30; ++i) {
    const auto t0 = Clock::now();
    auto r = c.Post("/api/decode", grid_body, "application/json");
    grid_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!r || r->status != 200) ++errors;
  }

  std::printf("%s: %d clients, %d requests of %d codes: p50 %.2f ms, p99 %.2f ms, max %.2f ms, %.0f requests/s, %d errors\n",
              name.c_str(), clients, requests, batch, percentile(all, 50), percentile(all, 99), percentile(all, 100),
              requests / seconds, errors.load());
  std::printf("%s: %dx%d grid (%d codes) in one request: median %.2f ms, max %.2f ms (30 requests)\n", name.c_str(), grid, grid,
              grid * grid, percentile(grid_ms, 50), percentile(grid_ms, 100));
  std::printf("RESULT %s p50_ms=%.3f p99_ms=%.3f rps=%.1f errors=%d grid_median_ms=%.3f\n", name.c_str(), percentile(all, 50),
              percentile(all, 99), requests / seconds, errors.load(), percentile(grid_ms, 50));
  return 0;
}
