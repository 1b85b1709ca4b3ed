#!/usr/bin/env python3
"""Time and measure the plain PyTorch port of LUNA attention (issue 4, item 6: the PyTorch baseline).

Only the attention part is measured, as in luna's bench/attention: given q, k, v (B, H, N, d) that
require grad, the feature map phi on q and on k (one map shared by the heads, spec defaults
M = 32, L = 4, Hpsi = 64, act = relu, per_channel) and the linear attention
out = phi(q)^T S / (phi(q)^T z + eps). The port is scripts/luna_torch_port.py, written the way a
PyTorch port of the paper's code is: psi runs nn.Linear layers on every scalar u_i(x) and
materialises the hidden activations.

What is measured, per shape, each shape in a fresh Python subprocess:
  fwd_ms      forward with autograd recording (as in training), median of --repeats after --warmup
  fwd_bwd_ms  forward + backward of out with a fixed random grad_output, to the grads of q, k, v and
              every feature-map parameter; median of --repeats after --warmup
  peak_bytes  peak resident memory added by one forward + backward. CPU PyTorch keeps no allocator
              statistics, so the subprocess (1) builds its inputs and runs one tiny warm-up call so
              libraries, thread pools and kernels are loaded, (2) reads its resident set size from
              /proc/self/statm, (3) runs one full forward + backward, (4) reports
              getrusage(RUSAGE_SELF).ru_maxrss - that RSS. This is the high-water mark of resident
              memory the call needed (activations kept for backward, gradients, temporaries), and is
              measured before any timing run, so ru_maxrss is not raised by anything else first.
  fwd_cpu_ms, fwd_bwd_cpu_ms   the same medians in process CPU time (all threads): on a shared
              machine wall time grows with the other tenants' load, CPU time much less, so a
              wall time far above cpu_ms / threads means the run was starved
  loadavg     the 1-minute load average before and after the timing runs
Threads: torch.set_num_threads(--threads) and OMP_NUM_THREADS/MKL_NUM_THREADS in the subprocess.

Before starting a shape the parent estimates its memory (the hidden activations psi keeps for
backward: 2 maps x B*H*N*M*L*Hpsi floats, plus one channel's worth of temporaries) and skips it,
with a message, when that exceeds --max-gib or what /proc/meminfo says is available.

Usage (PyTorch from PyPI in a venv, see bench/setup_torch_venv.sh):
    build/venv-torch/bin/python bench/attention_torch.py                 # B=32 H=2 N=2048 d=32
    build/venv-torch/bin/python bench/attention_torch.py --scaling       # B=1 H=2 d=32, N=256..16384
    build/venv-torch/bin/python bench/attention_torch.py --json          # one JSON object per line
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.normpath(os.path.join(HERE, "..", "scripts"))
DEFAULT_LENGTHS = [256, 512, 1024, 2048, 4096, 8192, 16384]


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def estimated_bytes(a):
    hidden = a.batch * a.heads * a.length * a.projections * a.channels * a.hidden  # per feature map call
    return int(4 * hidden * (2 + 1.0 / a.channels * 2))  # q and k kept for backward + one channel's temporaries


def worker(a):
    """Runs in a fresh process: one shape, prints one JSON object."""
    import torch

    sys.path.insert(0, SCRIPTS)
    from luna_torch_port import LunaFeatureMap, luna_attention

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    feature_map = LunaFeatureMap(a.head_dim, num_projections=a.projections, channels=a.channels, hidden=a.hidden,
                                 activation=a.activation, layout=a.layout)

    def inputs(batch, length):
        q, k, v = (torch.randn(batch, a.heads, length, a.head_dim).requires_grad_(True) for _ in range(3))
        return q, k, v, torch.randn(batch, a.heads, length, a.head_dim)  # (B, H, N, d) each; the last is grad_out

    def forward_backward(q, k, v, grad_out):
        out = luna_attention(q, k, v, feature_map)  # (B, H, N, d)
        out.backward(grad_out)

    forward_backward(*inputs(1, 16))  # loads kernels and thread pools
    q, k, v, grad_out = inputs(a.batch, a.length)
    for t in (q, k, v, *feature_map.parameters()):
        t.grad = None

    before = resident_bytes()
    forward_backward(q, k, v, grad_out)
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before

    def timed(fn):
        """Medians of (wall ms, process CPU ms) over the repeats."""
        wall, cpu = [], []
        for i in range(a.warmup + a.repeats):
            for t in (q, k, v, *feature_map.parameters()):
                t.grad = None
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if i >= a.warmup:
                wall.append(1e3 * (time.perf_counter() - start))
                cpu.append(1e3 * (time.process_time() - start_cpu))
        return statistics.median(wall), statistics.median(cpu)

    def forward_only():
        out = luna_attention(q, k, v, feature_map)  # records the graph, as in training
        del out

    load_before = os.getloadavg()[0]
    fwd_ms, fwd_cpu_ms = timed(forward_only)
    fwd_bwd_ms, fwd_bwd_cpu_ms = timed(lambda: forward_backward(q, k, v, grad_out))
    print(json.dumps({"kind": "luna-pytorch", "B": a.batch, "H": a.heads, "N": a.length, "d": a.head_dim,
                      "features": a.projections * a.channels, "fwd_ms": round(fwd_ms, 3),
                      "fwd_bwd_ms": round(fwd_bwd_ms, 3), "peak_bytes": int(peak_bytes),
                      "torch_version": torch.__version__, "threads": a.threads,
                      "fwd_cpu_ms": round(fwd_cpu_ms, 3), "fwd_bwd_cpu_ms": round(fwd_bwd_cpu_ms, 3),
                      "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)]}))


def run_shape(a, batch, length):
    """The parent side: memory guard, then a fresh subprocess for this shape."""
    shape = argparse.Namespace(**vars(a))
    shape.batch, shape.length = batch, length
    need, available = estimated_bytes(shape), available_bytes()
    limit = a.max_gib * 2**30
    if need > limit or (available is not None and need > 0.9 * available):
        print(f"skipped B={batch} N={length}: needs about {need / 2**30:.1f} GiB (limit {a.max_gib} GiB, "
              f"available {available / 2**30 if available else float('nan'):.1f} GiB)", file=sys.stderr)
        return None
    args = [sys.executable, os.path.abspath(__file__), "--worker", "--batch", str(batch), "--length", str(length)]
    for key in ("heads", "head_dim", "projections", "channels", "hidden", "activation", "layout", "threads",
                "warmup", "repeats"):
        args += ["--" + key.replace("_", "-"), str(getattr(a, key))]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"B={batch} N={length} failed (exit {done.returncode}):\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--length", type=int, default=2048)
    p.add_argument("--head-dim", type=int, default=32)
    p.add_argument("--projections", type=int, default=32, help="M")
    p.add_argument("--channels", type=int, default=4, help="L")
    p.add_argument("--hidden", type=int, default=64, help="Hpsi")
    p.add_argument("--activation", default="relu", choices=["relu", "gelu", "silu"])
    p.add_argument("--layout", default="per_channel", choices=["per_channel", "shared"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scaling", action="store_true", help="also B=1 for every N in --lengths")
    p.add_argument("--scaling-only", action="store_true", help="only the B=1 scaling runs")
    p.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)))
    p.add_argument("--max-gib", type=float, default=16.0, help="skip shapes estimated to need more memory")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return

    shapes = [] if a.scaling_only else [(a.batch, a.length)]
    if a.scaling or a.scaling_only:
        shapes += [(1, int(n)) for n in a.lengths.split(",")]
    if not a.json:
        print(f"{'kind':<13} {'B':>3} {'H':>2} {'N':>6} {'d':>3} {'F':>4} {'fwd ms':>10} {'fwd+bwd ms':>11} "
              f"{'peak MiB':>9}  torch, threads")
    for batch, length in shapes:
        r = run_shape(a, batch, length)
        if r is None:
            continue
        if a.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{r['kind']:<13} {r['B']:>3} {r['H']:>2} {r['N']:>6} {r['d']:>3} {r['features']:>4} "
                  f"{r['fwd_ms']:>10.1f} {r['fwd_bwd_ms']:>11.1f} {r['peak_bytes'] / 2**20:>9.1f}  "
                  f"{r['torch_version']}, {r['threads']}", flush=True)


if __name__ == "__main__":
    main()
