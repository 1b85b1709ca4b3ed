#!/usr/bin/env python3
"""PyTorch reference for luna's LUNA attention layer (issue 4, item 5).

Runs the plain PyTorch port of spec/LUNA.md (scripts/luna_torch_port.py) in float64 on a small
padded batch and writes, per case, tests/fixtures/luna_parity/<case>.safetensors holding
    x [B,N,D], key_padding_mask bool [B,N] (True = padded), R [B,N,D]      inputs, float32
    param.<name>        every parameter under its state_dict name (q_proj.weight, ...,
                        feature_map.proj.weight, feature_map.psi.0.fc1.weight, ...), float32
    out [B,N,D]         the layer's output
    phi_q [B,H,N,F]     the feature map applied to the projected queries (pins the feature order
                        i*L + l, which the attention output alone cannot see: any feature
                        permutation shared by queries and keys leaves phi_q^T S unchanged)
    grad.x, grad.<name> gradients of loss = sum(out * R) w.r.t. x and every parameter
and the case's options as metadata. Inputs and parameters are drawn in float32 and the reference
runs on exactly those values in float64; results are stored rounded to float32 (relative 6e-8).

ReLU gates are kinks: if float32 rounding moved a pre-activation across 0, the gradient would jump.
The script therefore redraws parameters (next seed) until every hidden pre-activation a*u + c and
every psi output before its final ReLU is at least MARGIN away from 0, for queries and keys, and
every channel's final ReLU is on for some scalars and off for others (ON_RANGE), and the case is
well-conditioned: PyTorch's own float32 run agrees with float64 to TORCH_F32_BOUND.

Regenerate (any PyTorch >= 1.13; Debian's python3-torch is enough):
    /usr/bin/python3 scripts/make_luna_parity_fixture.py
"""
import copy
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from luna_torch_port import ACTIVATIONS, LunaAttention  # noqa: E402

B, N, D, H = 3, 7, 8, 2  # d = 4
LENGTHS = [7, 5, 2]  # real tokens per sequence; the rest is padding
EPS = 1e-6
MARGIN = 1e-5  # min |pre-activation| at a ReLU, far above float32 rounding of O(1) values (~1e-7)
# Every channel's final ReLU is on for some scalars and off for others, so both sides of the gate
# (and every channel's parameter gradients) are exercised.
ON_RANGE = (0.2, 0.95)
# A query whose denominator phi_q^T z is tiny makes the gradients ill-conditioned (float32 rounding
# amplified by ~max/min denominator). Draws where PyTorch's own float32 run differs from float64
# by more than this are skipped, so the test's 1e-4 has 10x headroom for luna's own rounding.
TORCH_F32_BOUND = 1e-5

CASES = {
    "per_channel_relu": dict(num_projections=4, channels=3, hidden=6, activation="relu", layout="per_channel",
                             envelope=False),
    "shared_relu": dict(num_projections=4, channels=3, hidden=6, activation="relu", layout="shared",
                        envelope=False),
    "per_channel_gelu_envelope": dict(num_projections=4, channels=3, hidden=6, activation="gelu",
                                      layout="per_channel", envelope=True),
}


def draw_parameters(model, seed):
    """float32 values with every parameter non-trivial (non-zero biases, beta != 0)."""
    g = torch.Generator().manual_seed(seed)
    uniform = lambda p, lo, hi: p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float32) * (hi - lo) + lo)
    hidden = model.feature_map.psi[0].fc1.out_features
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "feature_map.proj.weight":  # the paper's N(0, 1/d)
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) / math.sqrt(model.feature_map.head_dim))
            elif name == "feature_map.envelope.beta":
                p.fill_(0.15)
            elif name.endswith("fc1.weight") or name.endswith("fc1.bias"):  # nn.Linear(1, Hpsi) default
                uniform(p, -1.0, 1.0)
            elif name.endswith("fc2.weight"):  # nn.Linear(Hpsi, .) default
                uniform(p, -1.0 / math.sqrt(hidden), 1.0 / math.sqrt(hidden))
            elif name.endswith("fc2.bias"):  # mostly positive, so most features are on, some off
                uniform(p, -0.05, 0.4)
            else:  # q/k/v/out projections and feature_map.proj.bias
                uniform(p, -0.5, 0.5)


def gate_statistics(model, x):
    """Over the queries and keys of x (float64 model): the smallest |value| reaching a ReLU gate,
    and for each channel l the fraction of scalars u where psi_l is on (its final ReLU passes)."""
    fm = model.feature_map
    smallest, on = math.inf, []
    for proj in (model.q_proj, model.k_proj):
        u = fm.proj(model.split_heads(proj(x))).unsqueeze(-1)  # (B, H, N, M, 1)
        outputs = []
        for mlp in fm.psi:
            hidden = mlp.fc1(u)  # (B, H, N, M, Hpsi)
            if mlp.act is ACTIVATIONS["relu"]:
                smallest = min(smallest, hidden.abs().min().item())
            outputs.append(mlp.fc2(mlp.act(hidden)))  # (B, H, N, M, 1 or L)
            smallest = min(smallest, outputs[-1].abs().min().item())
        on.append((torch.cat(outputs, dim=-1) > 0).double().flatten(0, -2))  # (B*H*N*M, L)
    return smallest, torch.cat(on).mean(0).tolist()


def write_safetensors(path, tensors, metadata):
    dtype_names = {torch.float32: "F32", torch.float64: "F64", torch.bool: "BOOL"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors:
        data = t.detach().contiguous().cpu().numpy().tobytes()  # little-endian on x86
        header[name] = {"dtype": dtype_names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)


def forward_backward(model, x, R, mask):
    """out, phi_q and the gradients of sum(out * R) w.r.t. x and every parameter, in model's dtype."""
    x = x.detach().to(next(model.parameters()).dtype).clone().requires_grad_(True)
    model.zero_grad()
    out = model(x, mask)
    loss = (out * R.to(x.dtype)).sum()
    loss.backward()
    with torch.no_grad():
        phi_q = model.feature_map(model.split_heads(model.q_proj(x)))  # (B, H, N, F)
    grads = [("grad.x", x.grad)] + [("grad." + n, p.grad) for n, p in model.named_parameters()]
    return loss.item(), [("out", out.detach()), ("phi_q", phi_q)] + grads


def relative_error(got, want):  # max |got - want| / max |want|, the norm the C++ test uses
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp(min=1e-300)).item()


def make_case(name, options, case_index):
    g = torch.Generator().manual_seed(1000 + case_index)
    x = torch.rand(B, N, D, generator=g, dtype=torch.float32) * 2 - 1
    R = torch.rand(B, N, D, generator=g, dtype=torch.float32) * 2 - 1
    mask = torch.arange(N)[None, :] >= torch.tensor(LENGTHS)[:, None]  # (B, N), True = padded

    model = LunaAttention(D, H, eps=EPS, **options)
    for seed in range(1000 * case_index, 1000 * case_index + 1000):
        draw_parameters(model, seed)
        reference = copy.deepcopy(model).double()
        with torch.no_grad():
            margin, channel_on = gate_statistics(reference, x.double())
        if margin < MARGIN or not all(ON_RANGE[0] <= f <= ON_RANGE[1] for f in channel_on):
            continue
        loss, results = forward_backward(reference, x, R, mask)
        _, results32 = forward_backward(copy.deepcopy(model), x, R, mask)
        torch_f32_error = max(relative_error(a, b) for (_, a), (_, b) in zip(results32, results))
        if torch_f32_error <= TORCH_F32_BOUND:
            break
    else:
        raise RuntimeError(f"{name}: no parameter draw keeps ReLU inputs {MARGIN} away from 0 with every channel "
                           f"on for a fraction in {ON_RANGE} of the scalars and PyTorch's float32 run within "
                           f"{TORCH_F32_BOUND} of float64")
    phi_q = dict(results)["phi_q"]
    zero_fraction = (phi_q == 0).double().mean().item()

    tensors = [("x", x), ("key_padding_mask", mask), ("R", R)]
    tensors += [("param." + n, p.detach().clone()) for n, p in model.named_parameters()]
    tensors += [(n, t.float()) for n, t in results]
    metadata = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
    metadata.update(embed_dim=str(D), num_heads=str(H), eps=str(EPS), torch=torch.__version__, seed=str(seed),
                    relu_margin=f"{margin:.3g}", channel_on=" ".join(f"{f:.2f}" for f in channel_on),
                    torch_f32_error=f"{torch_f32_error:.3g}", loss=repr(loss))
    directory = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                                              "luna_parity"))
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name + ".safetensors")
    write_safetensors(path, tensors, metadata)
    print(f"wrote {path} ({os.path.getsize(path)} bytes): seed {seed}, ReLU margin {margin:.3g}, channels on "
          f"{[round(f, 2) for f in channel_on]}, {100 * zero_fraction:.0f}% of phi_q entries are 0, "
          f"PyTorch float32 vs float64 {torch_f32_error:.2g}, loss {loss:.6f}")


def main():
    torch.set_num_threads(1)
    for index, (name, options) in enumerate(CASES.items()):
        make_case(name, options, index)


if __name__ == "__main__":
    main()
