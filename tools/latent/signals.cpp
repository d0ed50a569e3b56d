#include "signals.h"

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "latent/train.h"

namespace latent::cli {
namespace {

std::atomic<bool> g_graceful{false};

}  // namespace

void set_graceful_stop(bool enabled) { g_graceful.store(enabled); }

void start_signal_thread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set]() {
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
      if (g_graceful.exchange(false)) {
        request_stop();
        continue;
      }
      std::_Exit(128 + sig);
    }
  }).detach();
}

}  // namespace latent::cli
