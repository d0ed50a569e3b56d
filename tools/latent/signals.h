// Ctrl-C and SIGTERM, handled by one dedicated thread.
//
// No compute thread ever runs a signal handler: oneDNN's JIT matrix kernels keep data below the
// stack pointer, which a handler's frame on the interrupted thread's stack overwrites (heap
// corruption seen under Ctrl-C). main() blocks SIGINT and SIGTERM before any thread exists, every
// thread inherits that mask, and one thread takes the signals with sigwait().
#pragma once

namespace latent::cli {

/// Call first thing in main(), before anything starts a thread.
void start_signal_thread();

/// While enabled, the first SIGINT/SIGTERM asks training to stop and save (latent::request_stop);
/// otherwise, and on a second signal, the process exits at once with 128 + signal. Outputs are
/// written atomically, so an exit never leaves a half-written file.
void set_graceful_stop(bool enabled);

}  // namespace latent::cli
