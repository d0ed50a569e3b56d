// Decode latency of an explorer-style server under load on loopback.
//
// C clients (keep-alive connections, each sending its next request as soon as its reply is in) send
// R batch-decode requests in all, each {"z": [B codes of N(0, I)]} to POST /api/decode, and time every
// reply from the first byte sent to the last byte received; then the 20x20 manifold grid (400 codes in
// one request) is timed on its own. Any reply other than 200 with the full body counts as an error.
// The server is given by --port (latent serve, or bench/serve_pytorch.py: the same API).
//
// The load generator is one thread driving all connections through epoll, as wrk does: server and
// client share this machine's cores, and 50 client threads would take CPU from the server and add
// their own wake-up delays to the latencies measured.
//
//   serve_load --port 8080 [--clients 50] [--requests 10000] [--batch 16] [--grid 20] [--warmup 1000]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
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

std::string http_request(const std::string& method, const std::string& path, const std::string& body) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n";
  if (!body.empty()) r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

int connect_to(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    throw std::runtime_error("cannot connect to " + host + ":" + std::to_string(port) + ": " + std::strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// One keep-alive connection: a request goes out whole, then bytes are read until the reply's
// headers and Content-Length bytes of body are in.
struct Connection {
  int fd = -1;
  std::string in;
  Clock::time_point sent;
  bool busy = false;
  bool closing = false;  // the server closed, or said it will close, after this reply

  void send_all(const std::string& request) {
    in.clear();
    sent = Clock::now();
    busy = true;
    for (size_t off = 0; off < request.size();) {
      const ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
      off += static_cast<size_t>(n);
    }
  }

  // Reads what is there; returns the HTTP status once the reply is complete, 0 while it is not,
  // -1 when the connection closed or broke before it was.
  int receive() {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      closing = true;
      break;
    }
    const size_t head = in.find("\r\n\r\n");
    if (head == std::string::npos) return closing ? -1 : 0;
    std::string headers = in.substr(0, head);
    std::transform(headers.begin(), headers.end(), headers.begin(), [](unsigned char c) { return std::tolower(c); });
    const size_t cl = headers.find("\r\ncontent-length:");
    if (cl == std::string::npos) return -1;
    const size_t length = std::stoul(headers.substr(cl + 17));
    if (in.size() < head + 4 + length) return closing ? -1 : 0;
    if (in.size() > head + 4 + length) return -1;  // bytes nobody asked for
    if (headers.find("\r\nconnection: close") != std::string::npos) closing = true;
    busy = false;
    return std::atoi(in.c_str() + 9);  // "HTTP/1.1 200 ..."
  }
};

struct LoadResult {
  std::vector<double> ms;
  int errors = 0;
  double seconds = 0;
};

// Closed loop: each connection sends its next request as soon as its reply is complete.
LoadResult run_load(const std::string& host, int port, int clients, int requests, const std::vector<std::string>& bodies) {
  std::vector<std::string> wire;
  for (const auto& b : bodies) wire.push_back(http_request("POST", "/api/decode", b));
  const int ep = epoll_create1(0);
  std::vector<Connection> conns(static_cast<size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    conns[c].fd = connect_to(host, port);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(c);
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[c].fd, &ev);
  }
  LoadResult result;
  result.ms.reserve(static_cast<size_t>(requests));
  int issued = 0, done = 0;
  const auto start = Clock::now();
  for (auto& c : conns)
    if (issued < requests) c.send_all(wire[issued++ % wire.size()]);
  std::vector<epoll_event> events(static_cast<size_t>(clients));
  while (done < issued) {
    const int n = epoll_wait(ep, events.data(), clients, 30000);
    if (n == 0) throw std::runtime_error("no reply for 30 s");
    for (int k = 0; k < n; ++k) {
      Connection& c = conns[events[k].data.u32];
      if (!c.busy) continue;
      const int status = c.receive();
      if (status == 0) continue;
      result.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c.sent).count());
      ++done;
      if (status != 200 && result.errors++ < 5)
        std::fprintf(stderr, "error: %s\n",
                     status < 0 ? "connection closed mid-reply" : ("HTTP " + std::to_string(status)).c_str());
      if (c.closing) {  // keep-alive limit reached, or a broken reply: a new connection goes on
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = connect_to(host, port);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = events[k].data.u32;
        epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
        c.busy = c.closing = false;
      }
      if (issued < requests) c.send_all(wire[issued++ % wire.size()]);
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& c : conns) ::close(c.fd);
  ::close(ep);
  return result;
}

int64_t latent_size(const std::string& host, int port) {
  Connection c;
  c.fd = connect_to(host, port);
  c.send_all(http_request("GET", "/api/info", ""));
  int status = 0;
  while ((status = c.receive()) == 0) usleep(1000);
  ::close(c.fd);
  if (status != 200) return 20;
  return json::parse(c.in.substr(c.in.find("\r\n\r\n") + 4)).value("latent", 20);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Decode latency of the explorer's API under concurrent load"};
  std::string host = "127.0.0.1", name = "server";
  int port = 8080, clients = 50, requests = 10000, batch = 16, grid = 20, warmup = 1000;
  int64_t latent = 0;
  app.add_option("--host", host, "IPv4 address of the server")->capture_default_str();
  app.add_option("--port", port)->required();
  app.add_option("--clients", clients, "concurrent keep-alive connections")->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--requests", requests)->capture_default_str()->check(CLI::Range(1, 100000000));
  app.add_option("--batch", batch, "codes per request")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--warmup", warmup, "requests sent first and not timed (threads, caches, kernels start up)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--grid", grid, "manifold grid side")->capture_default_str()->check(CLI::Range(1, 32));
  app.add_option("--latent", latent, "latent size (default: from /api/info, or 20)");
  app.add_option("--name", name, "label for the output")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (latent == 0) latent = latent_size(host, port);
    std::mt19937 rng(1);
    std::vector<std::string> bodies;
    for (int i = 0; i < 64; ++i) bodies.push_back(decode_body(batch, latent, rng));
    if (warmup > 0) run_load(host, port, clients, warmup, bodies);
    const LoadResult load = run_load(host, port, clients, requests, bodies);
    const LoadResult grids = run_load(host, port, 1, 30, {decode_body(static_cast<int64_t>(grid) * grid, latent, rng)});
    const int errors = load.errors + grids.errors;
    const double rps = requests / load.seconds;

    std::printf("%s: %d clients, %d requests of %d codes: p50 %.2f ms, p99 %.2f ms, max %.2f ms, %.0f requests/s, %d errors\n",
                name.c_str(), clients, requests, batch, percentile(load.ms, 50), percentile(load.ms, 99),
                percentile(load.ms, 100), rps, errors);
    std::printf("%s: %dx%d grid (%d codes) in one request: median %.2f ms, max %.2f ms (30 requests)\n", name.c_str(), grid, grid,
                grid * grid, percentile(grids.ms, 50), percentile(grids.ms, 100));
    std::printf("RESULT %s p50_ms=%.3f p99_ms=%.3f rps=%.1f errors=%d grid_median_ms=%.3f\n", name.c_str(),
                percentile(load.ms, 50), percentile(load.ms, 99), rps, errors, percentile(grids.ms, 50));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve_load: %s\n", e.what());
    return 1;
  }
  return 0;
}
