// Atomic whole-file writes for small files next to checkpoints (config.json, summaries, metrics):
// a temp file in the same folder, fsync, rename over the target, fsync of the folder. A crash or
// a full disk leaves either the old file or the new one, never a torn one.
#pragma once
#include <string>
#include <string_view>

namespace luna {

// Writes `bytes` to `path` atomically (see above). Errors name the path, the temp file and the
// system's reason; the temp file is removed on failure.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace luna
