// Learning-rate schedules for luna::optim optimizers: each maps a step number to an lr per
// parameter group, as a pure function (get_lr) and by writing it into the optimizer (step()).
// Schedules match torch.optim.lr_scheduler and Hugging Face's get_*_schedule_with_warmup.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <luna/nn/optimizer.h>

namespace luna::optim {

// Holds the optimizer and one base lr per group (the group lrs when the scheduler was built).
// Step 0 is the state before the first step(); constructing a scheduler writes the step-0 lr into
// the optimizer, as torch does. Call step() once after each optimizer.step().
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances one step and sets every group's lr.
  void step();
  // The lr of group 0 (or `group`) at `step`, without touching the optimizer.
  double get_lr(int64_t step) const { return get_lr(step, 0); }
  double get_lr(int64_t step, size_t group) const;
  // How many times step() has run (torch's last_epoch).
  int64_t last_step() const { return last_step_; }
  // Jumps to `step`, e.g. when resuming from a checkpoint, and sets the optimizer's lrs for it.
  void set_last_step(int64_t step);
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return optimizer_; }

 protected:
  LRScheduler(Optimizer& optimizer, std::string name);
  // The lr at `step` of a group whose base lr is `base_lr`.
  virtual double lr_at(int64_t step, double base_lr) const = 0;
  // Writes the lrs of last_step_ into the optimizer; derived constructors call it once built.
  void apply();

  Optimizer& optimizer_;
  std::string name_;
  std::vector<double> base_lrs_;
  int64_t last_step_ = 0;
};

// torch.optim.lr_scheduler.ConstantLR: base * factor for the first total_iters steps, then base.
// ConstantLR(opt, 1.0, 0) keeps the lr constant.
class ConstantLR : public LRScheduler {
 public:
  ConstantLR(Optimizer& optimizer, double factor = 1.0 / 3, int64_t total_iters = 5);

 private:
  double lr_at(int64_t step, double base_lr) const override;
  double factor_;
  int64_t total_iters_;
};

// Hugging Face get_linear_schedule_with_warmup: 0 -> base linearly over warmup_steps, then
// base -> 0 linearly at total_steps, 0 afterwards.
class LinearWarmupLinearDecay : public LRScheduler {
 public:
  LinearWarmupLinearDecay(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps);

 private:
  double lr_at(int64_t step, double base_lr) const override;
  int64_t warmup_steps_, total_steps_;
};

// Hugging Face get_cosine_schedule_with_warmup (half a cosine), with an lr floor as in
// get_cosine_with_min_lr_schedule_with_warmup: 0 -> base over warmup_steps, then
// min_lr + (base - min_lr) * (1 + cos(pi * progress)) / 2. Past total_steps the lr stays at
// min_lr (HF's formula would start climbing again).
class LinearWarmupCosineDecay : public LRScheduler {
 public:
  LinearWarmupCosineDecay(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr = 0.0);

 private:
  double lr_at(int64_t step, double base_lr) const override;
  int64_t warmup_steps_, total_steps_;
  double min_lr_;
};

// The LRA schedule base * min(1, step / warmup) / sqrt(max(step, warmup)). Here the optimizer's
// lr is the raw factor "base" (e.g. 0.05 for ListOps), not the peak lr, which is base/sqrt(warmup).
class RsqrtSchedule : public LRScheduler {
 public:
  RsqrtSchedule(Optimizer& optimizer, int64_t warmup_steps);

 private:
  double lr_at(int64_t step, double base_lr) const override;
  int64_t warmup_steps_;
};

// torch.optim.lr_scheduler.OneCycleLR (two phases, cosine annealing): max_lr / div_factor rises
// to max_lr over pct_start of total_steps, then falls to max_lr / div_factor / final_div_factor.
// The optimizer's own lr is ignored. Momentum/beta1 cycling (cycle_momentum) is not done: luna's
// optimizers keep momentum per optimizer, and the LRA protocols don't use it. Stepping past
// total_steps is an error, as in torch.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, double max_lr, int64_t total_steps, double pct_start = 0.3,
             double div_factor = 25.0, double final_div_factor = 1e4);

 private:
  double lr_at(int64_t step, double base_lr) const override;
  int64_t total_steps_;
  double pct_start_, div_factor_, final_div_factor_;
};

}  // namespace luna::optim
