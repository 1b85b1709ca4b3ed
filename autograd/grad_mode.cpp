// Thread-local grad mode; process-wide anomaly flag (as in PyTorch).
#include <luna/autograd/grad_mode.h>

#include <atomic>

namespace luna {
namespace {
thread_local bool grad_enabled = true;
std::atomic<bool> anomaly_enabled{false};
}  // namespace

bool GradMode::is_enabled() { return grad_enabled; }
void GradMode::set_enabled(bool enabled) { grad_enabled = enabled; }

namespace autograd {
void set_detect_anomaly(bool enabled) { anomaly_enabled = enabled; }
bool is_anomaly_enabled() { return anomaly_enabled; }
}  // namespace autograd

}  // namespace luna
