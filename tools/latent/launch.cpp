#include "launch.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common.h"
#include "latent/error.h"
#include "latent/train.h"

extern char** environ;

namespace latent::cli {
namespace {

// A port nothing listens on now (the kernel's choice), for rank 0's rendezvous.
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("--nproc: could not open a socket to find a free port: " + std::string(std::strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  if (port == 0) throw Error("--nproc: could not find a free port on 127.0.0.1");
  return port;
}

bool is_launcher_variable(const char* entry) {
  for (const char* name :
       {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=", "LATENT_LAUNCHER="})
    if (std::strncmp(entry, name, std::strlen(name)) == 0) return true;
  return false;
}

}  // namespace

std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}

int launch_local_workers(int nproc, const std::vector<std::string>& args) {
  const int port = free_port();
  std::vector<pid_t> pids;
  std::vector<bool> running;
  for (int r = 0; r < nproc; ++r) {
    // Everything the child needs is built before fork(): after it, only exec.
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e)
      if (!is_launcher_variable(*e)) env_text.emplace_back(*e);
    for (const auto& [k, v] : {std::pair<std::string, std::string>{"RANK", std::to_string(r)},
                               {"WORLD_SIZE", std::to_string(nproc)},
                               {"LOCAL_RANK", std::to_string(r)},
                               {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
                               {"MASTER_ADDR", "127.0.0.1"},
                               {"MASTER_PORT", std::to_string(port)},
                               {"LATENT_LAUNCHER", "latent"}})
      env_text.push_back(k + "=" + v);
    std::vector<char*> envp, argv;
    for (auto& s : env_text) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> arg_text = args;
    for (auto& s : arg_text) argv.push_back(s.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw Error("--nproc: could not start worker " + std::to_string(r) + ": " + std::strerror(errno));
    if (pid == 0) {
      setpgid(0, 0);  // signals reach the workers through this process, once
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execve("/proc/self/exe", argv.data(), envp.data());
      _exit(127);
    }
    pids.push_back(pid);
    running.push_back(true);
  }
  int status = 0, left = nproc;
  bool forwarded = false;
  std::chrono::steady_clock::time_point failed_at{};
  while (left > 0) {
    int st = 0;
    const pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid > 0) {
      for (int r = 0; r < nproc; ++r) {
        if (pids[r] != pid) continue;
        running[r] = false;
        --left;
        const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (code != 0 && status == 0) {
          status = code;
          failed_at = std::chrono::steady_clock::now();
          if (code != 130)
            std::fprintf(stderr, "latent: worker %d (rank %d) exited with status %d\n", static_cast<int>(pid), r, code);
        }
      }
      continue;
    }
    if (stop_requested() && !forwarded) {
      forwarded = true;
      for (int r = 0; r < nproc; ++r)
        if (running[r]) kill(pids[r], SIGTERM);
    }
    // The others see a failed worker within seconds (the heartbeat); past that, they are stuck.
    if (status != 0 && std::chrono::steady_clock::now() - failed_at > std::chrono::seconds(30)) {
      for (int r = 0; r < nproc; ++r)
        if (running[r]) kill(pids[r], SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return status;
}

void run_as_workers(int nproc) {
  if (std::getenv("WORLD_SIZE")) throw Error("--nproc starts a job's workers itself; it cannot run inside another launcher");
  if (!distributed_available()) throw Error("--nproc: this build of latent has no distributed training (needs libgloo-dev)");
  std::vector<std::string> args;
  const auto& all = command_line();
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == "--nproc") {
      ++i;
      continue;
    }
    if (all[i].rfind("--nproc=", 0) == 0) continue;
    args.push_back(all[i]);
  }
  exit_status() = launch_local_workers(nproc, args);
}

std::unique_ptr<Communicator> join_job_if_launched(const nlohmann::json& agreement, int threads) {
  const RankInfo ranks = rank_info_from_environment();
  if (!ranks.distributed()) {
    set_num_threads(threads);
    return nullptr;
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_num_threads(threads > 0 ? threads : std::max(1, cores / ranks.local_world));
  return Communicator::join(ranks, DistOptions{}, agreement);
}

}  // namespace latent::cli
