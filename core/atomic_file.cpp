// write_file_atomically: temp file, fsync, rename, fsync of the folder.
#include <luna/core/atomic_file.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <luna/core/error.h>

namespace luna {

namespace {
std::string errno_text(int error) { return std::strerror(error); }
}  // namespace

void write_file_atomically(const std::string& path, std::string_view bytes) {
  // pid keeps processes apart, the counter keeps threads of one process apart.
  static std::atomic<uint64_t> counter{0};
  const std::string temp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LUNA_CHECK(fd >= 0, path, ": cannot create the temp file '", temp, "': ", errno_text(errno));
  auto give_up = [&](const char* what) {
    const int error = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    LUNA_FAIL(path, ": ", what, " the temp file '", temp, "' failed: ", errno_text(error));
  };
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) give_up("writing");
    written += size_t(n);
  }
  // Without the fsync a crash after the rename could leave an empty file under the final name.
  if (::fsync(fd) != 0) give_up("flushing");
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    LUNA_FAIL(path, ": closing the temp file '", temp, "' failed: ", errno_text(error));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    LUNA_FAIL(path, ": cannot rename the temp file '", temp, "' over it: ", errno_text(error));
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string directory = parent.empty() ? "." : parent.string();
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);  // best effort: some filesystems cannot fsync a directory (EINVAL)
    ::close(dir_fd);
  }
}

}  // namespace luna
