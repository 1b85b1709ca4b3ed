#!/usr/bin/env python3
"""One training step of the LRA ListOps classifier with LUNA attention in plain PyTorch (issue 5,
item 8: the PyTorch baseline of bench/bench_train_step.cpp), optionally side by side with luna's.

The model is a plain port of the spec, the same model bench_train_step builds through luna's
models/lra_classifier (the skyformer ListOps row of spec/LRA.md): vocab 18, 10 classes, max_len
2048, dim 64, depth 2, heads 2, ffn 128, head_hidden 128, pre-LN with a final LayerNorm, GELU,
dropout 0.1 (after the embeddings, after attention, inside and after the FFN), learned positions,
mean pooling over real tokens, head Linear-ReLU-Linear. The attention is scripts/luna_torch_port.py's
LunaAttention (spec/LUNA.md: M = 32, L = 4, Hpsi = 64, ReLU psi, per_channel, psi written as
nn.Linear layers on every scalar, hidden activations materialised, as a port of the paper's code
does). Parameter names follow luna's (make_lra_parity_fixture.py). AdamW(lr 1e-4, betas (0.9,
0.999), eps 1e-6, weight decay 0), cross-entropy. The batch is B deterministic sequences of 2048
real tokens (no padding), as in bench_train_step.

One step = zero_grad, forward, cross_entropy, backward, AdamW step. Each batch size runs in a fresh
subprocess, which:
  1. runs one tiny step (B = 1, N = 16) so libraries, kernels and thread pools are loaded;
  2. reads its resident set (/proc/self/statm), runs one full step, and reports
     getrusage(RUSAGE_SELF).ru_maxrss minus that: peak_bytes, the resident memory the step added
     (CPU PyTorch keeps no allocator statistics). bench_train_step measures luna the same way
     (rss_growth_bytes). This step also serves as the warm-up;
  3. times --repeats more steps: median wall (step_ms) and process CPU time of all threads
     (step_cpu_ms).
Threads: torch.set_num_threads(--threads), OMP_NUM_THREADS / MKL_NUM_THREADS in the subprocess.

Memory guard (the port keeps depth x 2 maps x L x B*H*N*M*Hpsi floats of hidden activations for
backward, about 17 GB at B = 32): the subprocess runs under RLIMIT_DATA = what /proc/meminfo calls
available minus --reserve-gib, so an allocation past it fails inside PyTorch ("can't allocate
memory") instead of waking the kernel's OOM killer; its oom_score_adj is 1000 so that, if memory
runs out anyway, it and no other process is killed; and the parent kills it if MemAvailable falls
under --reserve-gib / 2 while it runs. A batch size that does not fit is reported as failed, with
the reason, and no figures.

With --luna PATH (the bench_train_step executable) each batch size first runs luna's benchmark at
the same B and threads, then PyTorch's, and the speed-up and memory ratios are printed.

Usage (PyTorch from PyPI in a venv, see bench/setup_torch_venv.sh):
    VENV/bin/python bench/train_step_torch.py --batches 32,8,4 --luna build-bench/bench/bench_train_step
    VENV/bin/python bench/train_step_torch.py --json      # B = 32 only, one JSON object per line
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.normpath(os.path.join(HERE, "..", "scripts"))

VOCAB, CLASSES, MAX_LEN, DIM, DEPTH, HEADS, FFN, HEAD_HIDDEN, DROPOUT = 18, 10, 2048, 64, 2, 2, 128, 128, 0.1
PROJECTIONS, CHANNELS, PSI_HIDDEN = 32, 4, 64  # LUNA M, L, Hpsi (spec defaults, luna's too)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def estimated_bytes(batch, length):
    """The port's hidden activations kept for backward, plus 2.5 channels' worth of temporaries
    (what bench/attention_torch.py measured for one attention: 11.27 GB = 8 + 2.5 channels)."""
    channel = 4 * batch * HEADS * length * PROJECTIONS * PSI_HIDDEN  # one psi channel of one map, bytes
    return int(channel * (DEPTH * 2 * CHANNELS + 2.5))


def deterministic_tokens(batch, length):
    """Ids 3..17 (digits and operators; never pad 0, unk 1 or CLS 2): bench_train_step's batch."""
    import torch

    b = torch.arange(batch).unsqueeze(1)
    i = torch.arange(length).unsqueeze(0)
    return 3 + (7 * b + 3 * i + i * i) % (VOCAB - 3)  # (B, N) int64


def build_model():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    sys.path.insert(0, SCRIPTS)
    from luna_torch_port import LunaAttention

    class Layer(nn.Module):  # pre-LN; dropout as luna's TransformerEncoderLayer (and PyTorch's)
        def __init__(self):
            super().__init__()
            self.self_attn = LunaAttention(DIM, HEADS, num_projections=PROJECTIONS, channels=CHANNELS,
                                           hidden=PSI_HIDDEN, activation="relu", layout="per_channel")
            self.linear1, self.linear2 = nn.Linear(DIM, FFN), nn.Linear(FFN, DIM)
            self.norm1, self.norm2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
            self.dropout, self.dropout1, self.dropout2 = nn.Dropout(DROPOUT), nn.Dropout(DROPOUT), nn.Dropout(DROPOUT)

        def forward(self, x, key_padding_mask):  # x (B, N, D)
            x = x + self.dropout1(self.self_attn(self.norm1(x), key_padding_mask))
            return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))

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
            self.embedding_dropout = nn.Dropout(DROPOUT)
            self.encoder = Encoder()
            self.head = Head()

        def forward(self, tokens):  # tokens (B, N) int64 -> logits (B, classes)
            key_padding_mask = tokens == 0  # (B, N), True = padding
            n = tokens.shape[1]
            x = self.token_embedding(tokens) + self.position_embedding(torch.arange(n))  # (B, N, D)
            x = self.encoder(self.embedding_dropout(x), key_padding_mask)
            keep = (~key_padding_mask).to(x.dtype).unsqueeze(-1)  # (B, N, 1)
            pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # (B, D), mean over real tokens
            return self.head(pooled)

    return LraClassifier()


def worker(a):
    """Runs in a fresh process: one batch size, prints one JSON object."""
    # Before anything large exists: make this process the OOM killer's first choice, and cap its
    # data segment so PyTorch's allocations fail cleanly first.
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    if a.data_limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (a.data_limit, a.data_limit))

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    result = {"kind": "luna-lra-pytorch", "B": a.batch, "N": a.length, "threads": a.threads,
              "torch_version": torch.__version__, "estimated_bytes": estimated_bytes(a.batch, a.length),
              "data_limit_bytes": a.data_limit}

    def step(tokens, labels):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    step(deterministic_tokens(1, 16), torch.zeros(1, dtype=torch.int64))  # loads kernels and thread pools
    tokens = deterministic_tokens(a.batch, a.length)  # (B, N)
    labels = torch.arange(a.batch) % CLASSES  # (B)

    before = resident_bytes()
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        step(tokens, labels)
    except (RuntimeError, MemoryError) as e:  # PyTorch reports a refused allocation as RuntimeError
        result.update(failed=True, error=str(e).splitlines()[0][:300],
                      peak_bytes_before_failure=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before,
                      seconds_before_failure=round(time.perf_counter() - start, 1))
        print(json.dumps(result), flush=True)
        return
    result["first_step_ms"] = round(1e3 * (time.perf_counter() - start), 1)
    result["first_step_cpu_ms"] = round(1e3 * (time.process_time() - start_cpu), 1)
    result["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    result["rss_before_bytes"] = before

    load_before = os.getloadavg()[0]
    wall, cpu = [], []
    for _ in range(a.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = step(tokens, labels)
        wall.append(1e3 * (time.perf_counter() - start))
        cpu.append(1e3 * (time.process_time() - start_cpu))
    result.update(step_ms=round(statistics.median(wall), 1), step_cpu_ms=round(statistics.median(cpu), 1),
                  step_ms_all=[round(t, 1) for t in wall], loss=round(loss, 6), repeats=a.repeats,
                  loadavg=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    print(json.dumps(result), flush=True)


def run_torch(a, batch):
    """The parent side: a fresh subprocess under the memory guard."""
    available = available_bytes()
    reserve = int(a.reserve_gib * 2**30)
    limit = available - reserve
    need = estimated_bytes(batch, a.length)
    if limit <= 0:
        return {"kind": "luna-lra-pytorch", "B": batch, "N": a.length, "failed": True,
                "error": f"only {available / 2**30:.1f} GiB available, below the {a.reserve_gib} GiB reserve"}
    args = [sys.executable, os.path.abspath(__file__), "--worker", "--batch", str(batch), "--length", str(a.length),
            "--threads", str(a.threads), "--repeats", str(a.repeats), "--data-limit", str(limit)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    if not a.json:
        print(f"# torch B={batch}: estimated {need / 2**30:.1f} GiB, available {available / 2**30:.1f} GiB, "
              f"data limit {limit / 2**30:.1f} GiB", file=sys.stderr, flush=True)
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = {"killed": False, "min_available": available}

    def watch():  # the last line of defence for the machine's other processes
        while child.poll() is None:
            now = available_bytes()
            watchdog["min_available"] = min(watchdog["min_available"], now)
            if now < reserve / 2:
                watchdog["killed"] = True
                child.kill()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    out, err = child.communicate()
    thread.join()
    lines = out.strip().splitlines()
    if watchdog["killed"] or child.returncode != 0 or not lines:
        reason = ("killed by the watchdog: MemAvailable fell under half the reserve" if watchdog["killed"]
                  else f"exit {child.returncode}: {err.strip()[-500:]}")
        return {"kind": "luna-lra-pytorch", "B": batch, "N": a.length, "failed": True, "error": reason,
                "estimated_bytes": need, "data_limit_bytes": limit}
    result = json.loads(lines[-1])
    result["min_available_bytes"] = watchdog["min_available"]
    return result


def run_luna(a, batch):
    args = [a.luna, "--json", f"--threads={a.threads}", f"--batch={batch}", f"--reps={a.luna_reps}"]
    done = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    if done.returncode != 0:
        raise RuntimeError(f"{a.luna} failed (exit {done.returncode}): {done.stderr[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="32", help="comma-separated batch sizes, each in a fresh process")
    p.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)  # the worker's
    p.add_argument("--length", type=int, default=MAX_LEN)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="timed steps after the first (a step may take minutes)")
    p.add_argument("--reserve-gib", type=float, default=2.0, help="memory left to the rest of the machine")
    p.add_argument("--luna", default="", help="bench_train_step executable: run luna at each batch size first")
    p.add_argument("--luna-reps", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data-limit", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return

    for batch in (int(b) for b in a.batches.split(",")):
        luna = run_luna(a, batch) if a.luna else None
        if luna is not None:
            print(json.dumps(luna) if a.json else
                  f"luna    B={batch:>2}: step {luna['step_ms']:9.1f} ms wall, {luna['step_cpu_ms']:9.1f} ms CPU, "
                  f"peak {luna['rss_growth_bytes'] / 2**20:8.1f} MiB resident growth "
                  f"({luna['allocator_peak_bytes'] / 2**20:.1f} MiB allocator peak); step/floor {luna['ratio']:.2f} "
                  f"(sgemm {luna['sgemm_gflops']:.1f} GFLOP/s, load {luna['loadavg']:.2f})", flush=True)
        torch_result = run_torch(a, batch)
        if a.json:
            print(json.dumps(torch_result), flush=True)
        elif torch_result.get("failed"):
            reached = torch_result.get("peak_bytes_before_failure")
            print(f"pytorch B={batch:>2}: FAILED ({torch_result['error']}); estimated "
                  f"{torch_result.get('estimated_bytes', 0) / 2**30:.1f} GiB, data limit "
                  f"{torch_result.get('data_limit_bytes', 0) / 2**30:.1f} GiB"
                  + (f", resident growth {reached / 2**30:.1f} GiB after {torch_result['seconds_before_failure']} s "
                     "when it failed" if reached is not None else ""), flush=True)
        else:
            print(f"pytorch B={batch:>2}: step {torch_result['step_ms']:9.1f} ms wall, "
                  f"{torch_result['step_cpu_ms']:9.1f} ms CPU, peak {torch_result['peak_bytes'] / 2**20:8.1f} MiB "
                  f"resident growth; torch {torch_result['torch_version']}, {torch_result['threads']} threads, "
                  f"load {torch_result['loadavg']}", flush=True)
        if luna is not None and not torch_result.get("failed"):
            line = {"compare": "luna vs pytorch", "B": batch,
                    "speedup_wall": round(torch_result["step_ms"] / luna["step_ms"], 2),
                    "speedup_cpu": round(torch_result["step_cpu_ms"] / luna["step_cpu_ms"], 2),
                    "memory_ratio_rss": round(luna["rss_growth_bytes"] / torch_result["peak_bytes"], 4),
                    "memory_ratio_allocator": round(luna["allocator_peak_bytes"] / torch_result["peak_bytes"], 4)}
            print(json.dumps(line) if a.json else
                  f"B={batch:>2}: luna is {line['speedup_wall']:.1f}x faster (wall), {line['speedup_cpu']:.1f}x (CPU "
                  f"time); luna's peak is 1/{1 / line['memory_ratio_rss']:.1f} of PyTorch's (resident growth "
                  f"both; allocator peak: 1/{1 / line['memory_ratio_allocator']:.1f})", flush=True)


if __name__ == "__main__":
    main()
