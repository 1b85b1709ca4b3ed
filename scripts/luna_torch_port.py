"""A plain PyTorch port of LUNA attention as spec/LUNA.md defines it (no fused kernels, no tricks).

This is the reference that luna's fused op is compared with, both for correctness
(scripts/make_luna_parity_fixture.py) and for speed and memory (bench/attention_torch.py). It is
written the way a PyTorch port of the paper's code is: ψ is a tiny nn.Linear MLP run on every
scalar u_i(x), so the hidden activations (tokens × M × Hψ per channel) are materialised and kept
for backward.

Parameter names follow spec/LUNA.md §2, so a LunaAttention state_dict loads 1:1 into luna's
nn::MultiHeadAttention(attention = "luna"):
    q_proj.*, k_proj.*, v_proj.*, out_proj.*          Linear(D, D) each
    feature_map.proj.weight [M, d], .bias [M]
    per_channel: feature_map.psi.{l}.fc1.weight [Hpsi, 1], .fc1.bias [Hpsi],
                 feature_map.psi.{l}.fc2.weight [1, Hpsi], .fc2.bias [1]        (l = 0..L-1)
    shared:      feature_map.psi.0.fc1.* as above, feature_map.psi.0.fc2.weight [L, Hpsi], .fc2.bias [L]
    envelope:    feature_map.envelope.beta [1]
One feature map per layer, shared by queries, keys and all heads (the spec's default). Not ported:
per_head, channel_rms_limit and the causal form (not needed by the fixture or the benchmark).

Conventions (spec §1-§2): feature index i*L + l (projection-major), phi = h(x)/sqrt(M) * psi,
h(x) = exp(beta ||x||^2 / (2 sqrt(d))) with the envelope else 1, eps = 1e-6 in the denominator,
key_padding_mask bool [B, N] with True = padded: a padded key adds nothing to S and z.

Works with any PyTorch >= 1.13 (Debian's python3-torch or a PyPI wheel).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}  # gelu: the exact erf form


class PsiMLP(nn.Module):
    """One scalar MLP u -> relu(fc2(act(fc1(u)))): fc1 Linear(1, Hpsi), fc2 Linear(Hpsi, outputs)."""

    def __init__(self, hidden, outputs, activation):
        super().__init__()
        self.fc1 = nn.Linear(1, hidden)
        self.fc2 = nn.Linear(hidden, outputs)
        self.act = ACTIVATIONS[activation]

    def forward(self, u):  # u (..., 1) -> (..., outputs); the hidden (..., Hpsi) is materialised
        return F.relu(self.fc2(self.act(self.fc1(u))))


class Envelope(nn.Module):
    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))


class LunaFeatureMap(nn.Module):
    """phi(x) = h(x)/sqrt(M) * [psi_l(w_i . x + b_i)]_{i, l}: x (..., d) -> (..., M*L)."""

    def __init__(self, head_dim, num_projections=32, channels=4, hidden=64, activation="relu",
                 layout="per_channel", envelope=False):
        super().__init__()
        if layout not in ("per_channel", "shared"):
            raise ValueError(f"unknown layout {layout!r}; use 'per_channel' or 'shared'")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
        self.head_dim, self.num_projections, self.channels, self.layout = head_dim, num_projections, channels, layout
        self.proj = nn.Linear(head_dim, num_projections)
        if layout == "per_channel":
            self.psi = nn.ModuleList([PsiMLP(hidden, 1, activation) for _ in range(channels)])
        else:
            self.psi = nn.ModuleList([PsiMLP(hidden, channels, activation)])
        self.envelope = Envelope() if envelope else None
        self.reset_parameters()

    def reset_parameters(self):
        """The paper's initialisation: W ~ N(0, 1/d), b = 0; psi layers keep the nn.Linear default."""
        nn.init.normal_(self.proj.weight, 0.0, 1.0 / math.sqrt(self.head_dim))
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        u = self.proj(x).unsqueeze(-1)  # (..., M, 1)
        if self.layout == "per_channel":
            psi = torch.cat([mlp(u) for mlp in self.psi], dim=-1)  # (..., M, L)
        else:
            psi = self.psi[0](u)  # (..., M, L)
        phi = psi.flatten(-2) / math.sqrt(self.num_projections)  # (..., M*L), index i*L + l
        if self.envelope is not None:
            squared_norm = (x * x).sum(-1, keepdim=True)  # (..., 1)
            phi = phi * torch.exp(self.envelope.beta * squared_norm / (2.0 * math.sqrt(self.head_dim)))
        return phi


def linear_attention(phi_q, phi_k, v, key_padding_mask=None, eps=1e-6):
    """out_i = phi_q_i^T S / (phi_q_i^T z + eps), S = sum_j phi_k_j v_j^T, z = sum_j phi_k_j.

    phi_q (B, H, Nq, F), phi_k (B, H, Nk, F), v (B, H, Nk, dv), key_padding_mask bool (B, Nk)."""
    if key_padding_mask is not None:
        phi_k = phi_k.masked_fill(key_padding_mask[:, None, :, None], 0.0)  # padded keys leave S and z
    S = torch.einsum("bhnf,bhne->bhfe", phi_k, v)  # (B, H, F, dv)
    z = phi_k.sum(dim=2)  # (B, H, F)
    numerator = torch.einsum("bhnf,bhfe->bhne", phi_q, S)  # (B, H, Nq, dv)
    denominator = torch.einsum("bhnf,bhf->bhn", phi_q, z) + eps  # (B, H, Nq)
    return numerator / denominator.unsqueeze(-1)


def luna_attention(q, k, v, feature_map, key_padding_mask=None, eps=1e-6):
    """The attention part only: q, k (B, H, N, d), v (B, H, N, dv) -> (B, H, Nq, dv)."""
    return linear_attention(feature_map(q), feature_map(k), v, key_padding_mask, eps)


class LunaAttention(nn.Module):
    """Multi-head LUNA attention, batch-first: x [B, N, D] -> [B, N, D]."""

    def __init__(self, embed_dim, num_heads, eps=1e-6, **feature_map_options):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.eps = embed_dim, num_heads, eps
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.feature_map = LunaFeatureMap(embed_dim // num_heads, **feature_map_options)

    def split_heads(self, t):  # (B, N, D) -> (B, H, N, d)
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.embed_dim // self.num_heads).transpose(1, 2)

    def forward(self, x, key_padding_mask=None):
        b, n, _ = x.shape
        q, k, v = self.split_heads(self.q_proj(x)), self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))
        heads = luna_attention(q, k, v, self.feature_map, key_padding_mask, self.eps)  # (B, H, N, d)
        return self.out_proj(heads.transpose(1, 2).reshape(b, n, self.embed_dim))
