// luna::Error and the one check macro every layer uses to reject bad input.
// Messages name the op, the values involved and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace luna {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <class T, class... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
template <class... Parts>
[[noreturn]] void throw_error(const Parts&... parts) {
  std::ostringstream os;
  append_all(os, parts...);
  throw Error(os.str());
}
}  // namespace detail
}  // namespace luna

// LUNA_CHECK(cond, "matmul: shapes ", a, " and ", b, " cannot be multiplied");
#define LUNA_CHECK(cond, ...)                        \
  do {                                               \
    if (!(cond)) ::luna::detail::throw_error(__VA_ARGS__); \
  } while (0)

#define LUNA_FAIL(...) ::luna::detail::throw_error(__VA_ARGS__)
