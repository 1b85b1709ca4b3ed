// stb_image's reason for its last failure, for the error messages of the image readers.
#pragma once
#include <stb/stb_image.h>

namespace luna::data::detail {

inline const char* stb_failure() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "no reason given";
}

}  // namespace luna::data::detail
