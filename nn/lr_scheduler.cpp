// The learning-rate schedules: the LRScheduler bookkeeping (base lrs, step count, writing lrs
// into the optimizer) and each schedule's formula, transcribed from torch / Hugging Face.
#include <luna/nn/lr_scheduler.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace luna::optim {

LRScheduler::LRScheduler(Optimizer& optimizer, std::string name) : optimizer_(optimizer), name_(std::move(name)) {
  for (const OptimizerParamGroup& group : optimizer_.param_groups()) base_lrs_.push_back(*group.lr);
}

double LRScheduler::get_lr(int64_t step, size_t group) const {
  LUNA_CHECK(step >= 0, name_, ".get_lr: step must be >= 0, got ", step);
  LUNA_CHECK(group < base_lrs_.size(), name_, ".get_lr: group ", group, " out of range (", base_lrs_.size(),
             " groups)");
  return lr_at(step, base_lrs_[group]);
}

void LRScheduler::apply() {
  auto& groups = optimizer_.param_groups();
  LUNA_CHECK(groups.size() == base_lrs_.size(), name_, ": the optimizer has ", groups.size(),
             " parameter groups but the scheduler was built for ", base_lrs_.size());
  for (size_t g = 0; g < groups.size(); ++g) groups[g].lr = get_lr(last_step_, g);
}

void LRScheduler::step() {
  ++last_step_;
  apply();
}

void LRScheduler::set_last_step(int64_t step) {
  LUNA_CHECK(step >= 0, name_, ".set_last_step: step must be >= 0, got ", step);
  last_step_ = step;
  apply();
}

namespace {
void check_warmup_total(const char* name, int64_t warmup_steps, int64_t total_steps) {
  LUNA_CHECK(total_steps > 0, name, ": total_steps must be > 0, got ", total_steps);
  LUNA_CHECK(warmup_steps >= 0 && warmup_steps <= total_steps, name, ": warmup_steps must be in [0, total_steps=",
             total_steps, "], got ", warmup_steps);
}
}  // namespace

ConstantLR::ConstantLR(Optimizer& optimizer, double factor, int64_t total_iters)
    : LRScheduler(optimizer, "ConstantLR"), factor_(factor), total_iters_(total_iters) {
  LUNA_CHECK(factor >= 0 && factor <= 1, "ConstantLR: factor must be in [0, 1], got ", factor);
  LUNA_CHECK(total_iters >= 0, "ConstantLR: total_iters must be >= 0, got ", total_iters);
  apply();
}

double ConstantLR::lr_at(int64_t step, double base_lr) const {
  return step < total_iters_ ? base_lr * factor_ : base_lr;
}

LinearWarmupLinearDecay::LinearWarmupLinearDecay(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps)
    : LRScheduler(optimizer, "LinearWarmupLinearDecay"), warmup_steps_(warmup_steps), total_steps_(total_steps) {
  check_warmup_total("LinearWarmupLinearDecay", warmup_steps, total_steps);
  apply();
}

double LinearWarmupLinearDecay::lr_at(int64_t step, double base_lr) const {
  if (step < warmup_steps_) return base_lr * double(step) / double(std::max<int64_t>(1, warmup_steps_));
  const double remaining = double(total_steps_ - step) / double(std::max<int64_t>(1, total_steps_ - warmup_steps_));
  return base_lr * std::max(0.0, remaining);
}

LinearWarmupCosineDecay::LinearWarmupCosineDecay(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                                                 double min_lr)
    : LRScheduler(optimizer, "LinearWarmupCosineDecay"),
      warmup_steps_(warmup_steps),
      total_steps_(total_steps),
      min_lr_(min_lr) {
  check_warmup_total("LinearWarmupCosineDecay", warmup_steps, total_steps);
  for (size_t g = 0; g < base_lrs_.size(); ++g)
    LUNA_CHECK(min_lr >= 0 && min_lr <= base_lrs_[g], "LinearWarmupCosineDecay: min_lr ", min_lr,
               " must be in [0, base lr ", base_lrs_[g], " of group ", g, "]");
  apply();
}

double LinearWarmupCosineDecay::lr_at(int64_t step, double base_lr) const {
  if (step < warmup_steps_) return base_lr * double(step) / double(std::max<int64_t>(1, warmup_steps_));
  const double progress = std::min(
      1.0, double(step - warmup_steps_) / double(std::max<int64_t>(1, total_steps_ - warmup_steps_)));
  const double cosine = std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
  return min_lr_ + (base_lr - min_lr_) * cosine;
}

RsqrtSchedule::RsqrtSchedule(Optimizer& optimizer, int64_t warmup_steps)
    : LRScheduler(optimizer, "RsqrtSchedule"), warmup_steps_(warmup_steps) {
  LUNA_CHECK(warmup_steps > 0, "RsqrtSchedule: warmup_steps must be > 0, got ", warmup_steps);
  apply();
}

double RsqrtSchedule::lr_at(int64_t step, double base_lr) const {
  const double s = double(step), warmup = double(warmup_steps_);
  return base_lr * std::min(1.0, s / warmup) / std::sqrt(std::max(s, warmup));
}

OneCycleLR::OneCycleLR(Optimizer& optimizer, double max_lr, int64_t total_steps, double pct_start,
                       double div_factor, double final_div_factor)
    : LRScheduler(optimizer, "OneCycleLR"),
      total_steps_(total_steps),
      pct_start_(pct_start),
      div_factor_(div_factor),
      final_div_factor_(final_div_factor) {
  LUNA_CHECK(max_lr >= 0, "OneCycleLR: max_lr must be >= 0, got ", max_lr);
  LUNA_CHECK(total_steps > 0, "OneCycleLR: total_steps must be > 0, got ", total_steps);
  LUNA_CHECK(pct_start >= 0 && pct_start <= 1, "OneCycleLR: pct_start must be in [0, 1], got ", pct_start);
  LUNA_CHECK(div_factor > 0, "OneCycleLR: div_factor must be > 0, got ", div_factor);
  LUNA_CHECK(final_div_factor > 0, "OneCycleLR: final_div_factor must be > 0, got ", final_div_factor);
  // torch replaces each group's initial lr by max_lr / div_factor: the base here is max_lr.
  std::fill(base_lrs_.begin(), base_lrs_.end(), max_lr);
  apply();
}

double OneCycleLR::lr_at(int64_t step, double max_lr) const {
  LUNA_CHECK(step <= total_steps_, "OneCycleLR: step ", step, " is past total_steps ", total_steps_,
             "; build the schedule with more total_steps");
  const double initial_lr = max_lr / div_factor_;
  const double min_lr = initial_lr / final_div_factor_;
  // Phase ends as torch computes them (float end steps), and its cosine annealing.
  const double warm_end = pct_start_ * double(total_steps_) - 1.0;
  const double last_end = double(total_steps_) - 1.0;
  const auto anneal = [](double start, double end, double pct) {
    return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
  };
  const double s = double(step);
  if (s <= warm_end) return anneal(initial_lr, max_lr, warm_end == 0 ? 1.0 : s / warm_end);
  const double span = last_end - warm_end;
  return anneal(max_lr, min_lr, span == 0 ? 1.0 : (s - warm_end) / span);
}

}  // namespace luna::optim
