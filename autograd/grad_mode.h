// Thread-local switches: whether ops record history (NoGradGuard turns it off for evaluation and
// optimizer steps) and whether anomaly mode checks every recorded op for non-finite values.
#pragma once

namespace luna {

class GradMode {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// RAII: no history is recorded while alive (like torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// RAII: re-enables recording inside a NoGradGuard (like torch.enable_grad()).
class EnableGradGuard {
 public:
  EnableGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(previous_); }

 private:
  bool previous_;
};

namespace autograd {
// Like torch.autograd.set_detect_anomaly: every op recorded for autograd checks its forward output,
// and every backward step its gradients, for NaN/Inf, and throws naming the op.
void set_detect_anomaly(bool enabled);
bool is_anomaly_enabled();

class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard() : previous_(is_anomaly_enabled()) { set_detect_anomaly(true); }
  ~DetectAnomalyGuard() { set_detect_anomaly(previous_); }

 private:
  bool previous_;
};
}  // namespace autograd

}  // namespace luna
