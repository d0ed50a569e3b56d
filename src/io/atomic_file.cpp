#include "latent/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "latent/error.h"

namespace latent {
namespace {

std::string errno_text() { return std::strerror(errno); }

void write_all(int fd, std::string_view bytes, const std::string& path) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write " + path + ": " + errno_text());
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// Temporary files of earlier writes to `target` whose process is gone (killed mid-write: kill -9,
// a crash, a power cut) are removed. Their names carry the writer's process id.
void remove_stale_temporaries(const std::filesystem::path& dir, const std::string& prefix) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos) continue;
    long pid = 0;
    try {
      pid = std::stol(name.substr(prefix.size(), dot - prefix.size()));
    } catch (const std::exception&) {
      continue;
    }
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) ::unlink(it->path().c_str());
  }
}

}  // namespace

void atomic_write(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot write " + path + ": cannot create its folder (" + ec.message() + ")");

  const std::string prefix = "." + target.filename().string() + ".tmp.";
  remove_stale_temporaries(dir, prefix);
  std::string tmpl = (dir / (prefix + std::to_string(::getpid()) + ".XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw Error("cannot write " + path + ": " + errno_text() + " (creating a temporary file beside it)");
  try {
    write_all(fd, bytes, path);
    if (::fsync(fd) != 0) throw Error("cannot write " + path + ": " + errno_text() + " (syncing it)");
    ::fchmod(fd, 0644);
  } catch (...) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    throw Error("cannot write " + path + ": " + errno_text() + " (closing it)");
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    std::string why = errno_text();
    ::unlink(tmpl.c_str());
    throw Error("cannot write " + path + ": " + why + " (renaming the temporary file to it)");
  }
  // The rename itself is made durable by syncing the folder entry.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a folder, expected a file");
  // A FIFO or a device would be read for ever (or block): only regular files (links followed).
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw Error(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path + ": " + errno_text());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("cannot read " + path);
  return ss.str();
}

}  // namespace latent
