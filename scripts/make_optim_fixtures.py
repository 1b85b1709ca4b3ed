#!/usr/bin/env python3
# Reference numbers for tests/nn/test_optim.cpp, produced by PyTorch: 10 float64 steps of each
# optimizer configuration on fixed parameters with gradients given as data, and the lr of each
# schedule per step. Regenerate with:  /usr/bin/python3 scripts/make_optim_fixtures.py
# (needs torch; Hugging Face schedules are transcribed below so `transformers` is not required).
import json
import math
import pathlib

import torch

OUT_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "optim"
STEPS = 10
DIGITS = 13  # significant digits kept: far below the tests' 1e-6 relative tolerance


def rounded(values):
    return [float(f"{v:.{DIGITS}g}") for v in values]


def flat(t):
    return rounded(t.detach().reshape(-1).tolist())


# Initial values and gradients are rounded to the digits the fixture keeps before torch sees
# them, so luna (reading the fixture) and torch start from identical numbers.
def exact(t):
    return torch.tensor(rounded(t.reshape(-1).tolist()), dtype=torch.float64).reshape(t.shape)


def make_problem():
    gen = torch.Generator().manual_seed(1234)
    shapes = {"w": [2, 3], "b": [3]}
    initial = {name: exact(torch.randn(shape, generator=gen, dtype=torch.float64)) for name, shape in shapes.items()}
    # Gradient magnitudes that rise and fall so AMSGrad's running max differs from exp_avg_sq.
    scales = [1.0, 2.0, 0.5, 1.5, 0.2, 0.1, 3.0, 0.3, 0.05, 1.0]
    grads = []
    for step in range(STEPS):
        grads_now = {name: exact(torch.randn(shape, generator=gen, dtype=torch.float64) * scales[step])
                     for name, shape in shapes.items()}
        if step == 3:
            grads_now["b"] = None  # a parameter without a gradient is skipped by the step
        grads.append(grads_now)
    return shapes, initial, grads


# name, torch class, optimizer-wide options, per-group overrides (group 0 holds w, group 1 holds b)
CONFIGS = [
    ("sgd_plain", "SGD", {"lr": 0.1}, [{}, {"lr": 0.05}]),
    ("sgd_nesterov_wd", "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
     [{}, {"lr": 0.2, "weight_decay": 0.0}]),
    ("sgd_momentum_dampening", "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05},
     [{}, {"weight_decay": 0.1}]),
    ("adam", "Adam", {"lr": 0.01}, [{}, {"lr": 0.02}]),
    ("adam_amsgrad_wd", "Adam", {"lr": 0.01, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True},
     [{}, {"lr": 0.005, "weight_decay": 0.0}]),
    ("adamw", "AdamW", {"lr": 0.01}, [{}, {"weight_decay": 0.0}]),
    ("adamw_amsgrad", "AdamW", {"lr": 0.02, "betas": [0.9, 0.98], "eps": 1e-9, "weight_decay": 0.1, "amsgrad": True},
     [{}, {"lr": 0.01, "weight_decay": 0.3}]),
]


def run_optimizer(config, shapes, initial, grads):
    name, kind, options, overrides = config
    params = {n: initial[n].clone().requires_grad_(True) for n in shapes}
    groups = [dict(params=[params["w"]], **overrides[0]), dict(params=[params["b"]], **overrides[1])]
    torch_options = dict(options)
    if "betas" in torch_options:
        torch_options["betas"] = tuple(torch_options["betas"])
    opt = getattr(torch.optim, kind)(groups, **torch_options)
    trajectory = []
    for step in range(STEPS):
        for n in shapes:
            params[n].grad = None if grads[step][n] is None else grads[step][n].clone()
        opt.step()
        trajectory.append([flat(params["w"]), flat(params["b"])])
    # luna's state_dict keys: "<flat param index>.<state name>", w is 0 and b is 1.
    final_state = {}
    for index, n in enumerate(["w", "b"]):
        for state_name, value in opt.state[params[n]].items():
            if value is None:  # torch's SGD without momentum stores momentum_buffer = None
                continue
            final_state[f"{index}.{state_name}"] = flat(value) if value.dim() > 0 else [float(value)]
    return {
        "name": name,
        "type": kind,
        "options": options,
        "groups": [dict(params=[0], **overrides[0]), dict(params=[1], **overrides[1])],
        "trajectory": trajectory,
        "final_state": final_state,
    }


# Hugging Face transformers.optimization, transcribed (LambdaLR multipliers).
def hf_linear(warmup, total):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


def hf_cosine_min_lr(warmup, total, min_lr_rate):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        factor = 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))
        return max(0.0, factor * (1 - min_lr_rate) + min_lr_rate)
    return f


def lra_rsqrt(warmup):
    return lambda step: min(1.0, step / warmup) / math.sqrt(max(step, warmup))


def record_schedule(base_lr, make_scheduler, steps):
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=base_lr)
    scheduler = make_scheduler(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    return rounded(lrs)


def schedules():
    lambda_lr = torch.optim.lr_scheduler.LambdaLR
    out = []

    def add(name, kind, args, base_lr, make, steps):
        out.append({"name": name, "type": kind, "args": args, "base_lr": base_lr,
                    "lrs": record_schedule(base_lr, make, steps)})

    add("linear", "LinearWarmupLinearDecay", {"warmup_steps": 5, "total_steps": 25}, 0.1,
        lambda o: lambda_lr(o, hf_linear(5, 25)), 30)
    add("linear_no_warmup", "LinearWarmupLinearDecay", {"warmup_steps": 0, "total_steps": 12}, 0.3,
        lambda o: lambda_lr(o, hf_linear(0, 12)), 14)
    # Only up to total_steps: past it HF's cosine climbs again, luna's stays at min_lr.
    add("cosine", "LinearWarmupCosineDecay", {"warmup_steps": 5, "total_steps": 25, "min_lr": 0.0}, 0.1,
        lambda o: lambda_lr(o, hf_cosine_min_lr(5, 25, 0.0)), 25)
    add("cosine_min_lr", "LinearWarmupCosineDecay", {"warmup_steps": 4, "total_steps": 20, "min_lr": 0.01}, 0.1,
        lambda o: lambda_lr(o, hf_cosine_min_lr(4, 20, 0.01 / 0.1)), 20)
    add("rsqrt", "RsqrtSchedule", {"warmup_steps": 8}, 0.05, lambda o: lambda_lr(o, lra_rsqrt(8)), 30)
    add("constant_default", "ConstantLR", {}, 0.1, lambda o: torch.optim.lr_scheduler.ConstantLR(o), 10)
    add("constant_half", "ConstantLR", {"factor": 0.5, "total_iters": 4}, 0.2,
        lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=4), 10)
    add("onecycle", "OneCycleLR", {"max_lr": 0.1, "total_steps": 30}, 0.1,
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=30, cycle_momentum=False), 30)
    onecycle_args = {"max_lr": 0.3, "total_steps": 20, "pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0}
    add("onecycle_custom", "OneCycleLR", onecycle_args, 0.3,
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, **onecycle_args, cycle_momentum=False), 20)
    return out


def main():
    torch.set_default_dtype(torch.float64)
    shapes, initial, grads = make_problem()
    optimizers = {
        "torch_version": torch.__version__,
        "param_names": ["w", "b"],
        "shapes": [shapes["w"], shapes["b"]],
        "initial": [flat(initial["w"]), flat(initial["b"])],
        "grads": [[None if g[n] is None else flat(g[n]) for n in ["w", "b"]] for g in grads],
        "configs": [run_optimizer(c, shapes, initial, grads) for c in CONFIGS],
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "optimizers.json").write_text(json.dumps(optimizers, separators=(",", ":")) + "\n")
    (OUT_DIR / "schedules.json").write_text(
        json.dumps({"torch_version": torch.__version__, "schedules": schedules()}, separators=(",", ":")) + "\n")
    print(f"wrote {OUT_DIR / 'optimizers.json'} and {OUT_DIR / 'schedules.json'}")


if __name__ == "__main__":
    main()
