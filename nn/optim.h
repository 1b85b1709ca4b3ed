// Umbrella header for luna::optim: optimizers (SGD, Adam, AdamW), parameter groups,
// clip_grad_norm_, and the learning-rate schedules. Mirrors <torch/optim.h>.
#pragma once
#include <luna/nn/lr_scheduler.h>
#include <luna/nn/optimizer.h>
