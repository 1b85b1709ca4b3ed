#!/usr/bin/env python3
"""PyTorch reference for the LRA "skyformer protocol" classifier with softmax attention.

A plain PyTorch port of luna's models/lra_classifier (same parameter names), initialised by a
closed-form formula that tests/models/test_lra_parity.cpp reproduces, run on a fixed padded batch:
writes logits, loss, every parameter gradient, and 5 AdamW steps (losses + final parameters) to
tests/fixtures/lra_parity/skyformer_softmax.safetensors.

Regenerate (needs PyTorch; Debian's python3-torch is enough):
    /usr/bin/python3 scripts/make_lra_parity_fixture.py
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, CLASSES, MAX_LEN, DIM, HEADS, FFN, HEAD_HIDDEN, DEPTH = 16, 4, 16, 64, 2, 128, 128, 2
LR, WEIGHT_DECAY, EPS, STEPS = 3e-3, 0.01, 1e-6, 5


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj, self.k_proj = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)
        self.v_proj, self.out_proj = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)

    def forward(self, x, key_padding_mask):
        b, n, _ = x.shape
        d = DIM // HEADS
        split = lambda t: t.view(b, n, HEADS, d).transpose(1, 2)  # (B, H, N, d)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # (B, H, N, N)
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v  # (B, H, N, d)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, DIM))


class Layer(nn.Module):  # pre-LN, GELU, dropout 0
    def __init__(self):
        super().__init__()
        self.self_attn = Attention()
        self.linear1, self.linear2 = nn.Linear(DIM, FFN), nn.Linear(FFN, DIM)
        self.norm1, self.norm2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)

    def forward(self, x, key_padding_mask):
        x = x + self.self_attn(self.norm1(x), key_padding_mask)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Layer() for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM)

    def forward(self, x, key_padding_mask):
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.norm(x)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(DIM, HEAD_HIDDEN), nn.Linear(HEAD_HIDDEN, CLASSES)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class LraClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, DIM, padding_idx=0)
        self.position_embedding = nn.Embedding(MAX_LEN, DIM)
        self.encoder = Encoder()
        self.head = Head()

    def forward(self, tokens):
        key_padding_mask = tokens == 0  # (B, N), True = padding
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.position_embedding(torch.arange(n))
        x = self.encoder(x, key_padding_mask)
        keep = (~key_padding_mask).to(x.dtype).unsqueeze(-1)  # (B, N, 1)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # mean over real tokens
        return self.head(pooled)


def formula_init(model):
    """Closed-form parameters, reproduced in the C++ test: tensor t (in sorted-name order),
    element j -> 0.08 sin(0.37 j + 1.3 t); LayerNorm weights 1 + 0.1 sin(...); padding row 0."""
    with torch.no_grad():
        for t, name in enumerate(sorted(model.state_dict().keys())):
            p = model.state_dict()[name]
            j = torch.arange(p.numel(), dtype=torch.float64)
            wave = torch.sin(0.37 * j + 1.3 * t)
            is_norm_weight = ("norm" in name.split(".")[-2]) and name.endswith("weight")
            values = 1.0 + 0.1 * wave if is_norm_weight else 0.08 * wave
            p.copy_(values.view(p.shape).to(p.dtype))
        model.token_embedding.weight[0].zero_()


def batch():
    lengths = [16, 11, 5]
    tokens = torch.zeros(len(lengths), MAX_LEN, dtype=torch.int64)
    for b, n in enumerate(lengths):
        for i in range(n):
            tokens[b, i] = 1 + (7 * b + 3 * i + i * i) % (VOCAB - 1)
    labels = torch.tensor([1, 3, 0], dtype=torch.int64)
    return tokens, labels


def write_safetensors(path, tensors, metadata):
    dtype_names = {torch.float32: "F32", torch.int64: "I64"}
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


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = LraClassifier()
    formula_init(model)
    tokens, labels = batch()
    out = [("tokens", tokens), ("labels", labels)]

    logits = model(tokens)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out += [("logits", logits), ("loss", loss.reshape(1))]
    out += [("grad." + n, p.grad.clone()) for n, p in sorted(model.named_parameters())]

    # The AdamW trajectory runs in float64: Adam's first steps act like sign(grad), so float32
    # rounding in tiny gradient entries is amplified (torch float32 vs torch float64 already differ
    # by ~1% after 5 steps). In float64 the two implementations must agree to ~1e-10.
    model = model.double()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, eps=EPS)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        step_loss = F.cross_entropy(model(tokens), labels)
        step_loss.backward()
        optimizer.step()
        losses.append(step_loss.item())
    out.append(("adamw.losses", torch.tensor(losses, dtype=torch.float32)))
    # Stored rounded to float32 to halve the fixture; the test allows for that rounding.
    out += [("adamw.param." + n, p.float()) for n, p in sorted(model.named_parameters())]

    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "lra_parity", "skyformer_softmax.safetensors")
    write_safetensors(os.path.normpath(path), out, {"torch": torch.__version__, "lr": str(LR), "weight_decay": str(WEIGHT_DECAY),
                                                    "eps": str(EPS), "steps": str(STEPS)})
    print("wrote", os.path.normpath(path), "loss", loss.item(), "adamw losses", losses)


if __name__ == "__main__":
    main()
