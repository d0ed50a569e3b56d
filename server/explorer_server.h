/// @brief The explorer's HTTP server: the JSON API of ExplorerApi and the page embedded at build time.
///
/// Routes: GET /api/info, /api/items?offset=&limit=, /api/scatter?limit=, /api/metrics;
/// POST /api/encode, /api/decode, /api/sample, /api/kl_steps, /api/interpolate (JSON bodies);
/// with an SD autoencoder (ServeOptions::sd): GET /api/sd/info, POST /api/sd/encode, /api/sd/decode,
/// /api/sd/interpolate (SdApi; without one they answer 404 saying so);
/// with a SMILES VAE checkpoint, /api/info and the Molecules view's /api/molecules/... routes
/// (MoleculeApi) instead of the image routes; with ServeOptions::train, live training: GET /api/train,
/// POST /api/train/start, /pause, /resume, /stop, GET /api/train/events?after=&wait= (JSON) and
/// /api/train/stream?after= (Server-Sent Events; a reconnect's Last-Event-ID resumes after it);
/// GET / and the page's files. Errors are {"error": "..."} with a 4xx status. The
/// page's files are looked up by exact name in a table compiled into the binary: nothing is read from disk.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "explorer_api.h"
#include "latent/checkpoint.h"
#include "sd_api.h"
#include "train_jobs.h"

namespace latent::server {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (see ExplorerServer::port)
  int threads = 512;                  // connections served at once (each holds a thread while open; threads start as they come)
  size_t max_body = size_t{8} << 20;  // larger request bodies get 413
  std::string precision = "auto";     // of the decoder's products for images: "fp32", "bf16" or "auto"
  ApiLimits limits;
  std::shared_ptr<SdApi> sd;         // the "SD latents" view, when served with --vae or --taesd
  std::shared_ptr<TrainJobs> train;  // live training (the Train tab), when given
};

class ExplorerServer {
 public:
  /// Builds the API for `checkpoint` and binds the socket; throws latent::Error when it cannot.
  ExplorerServer(LoadedCheckpoint checkpoint, const std::string& checkpoint_path, const ServeOptions& options);
  ~ExplorerServer();
  ExplorerServer(const ExplorerServer&) = delete;
  ExplorerServer& operator=(const ExplorerServer&) = delete;

  int port() const;
  /// The image model's API; throws ApiError(404) when the server shows a molecule model.
  const ExplorerApi& api() const;
  bool shows_molecules() const;
  /// "http://HOST:PORT/"
  std::string address() const;
  /// Serves until stop() is called from another thread.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace latent::server
