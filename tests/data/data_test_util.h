// Helpers for the data reader tests: a temporary folder that cleans itself up, file writers, and a
// check that a call throws luna::Error with every expected piece in its message.
#pragma once
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <luna/core/error.h>

namespace luna::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "luna-data-test-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  // Writes `bytes` to <dir>/<relative> (creating folders) and returns the full path.
  std::string write(const std::string& relative, const std::string& bytes) const {
    const std::filesystem::path file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    REQUIRE(out.good());
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

// Runs `call`, requires a luna::Error, and requires each of `pieces` in its message.
inline std::string require_error(const std::function<void()>& call, const std::vector<std::string>& pieces) {
  std::string message;
  try {
    call();
  } catch (const luna::Error& error) {
    message = error.what();
  }
  INFO("error message: " << message);
  REQUIRE(!message.empty());
  for (const std::string& piece : pieces) {
    INFO("expected piece: " << piece);
    CHECK(message.find(piece) != std::string::npos);
  }
  return message;
}

template <class Span>
std::vector<int32_t> to_vector(const Span& span) {
  return std::vector<int32_t>(span.begin(), span.end());
}

}  // namespace luna::testing
