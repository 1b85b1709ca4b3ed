#!/bin/sh
# Creates the Python venv that bench/attention_torch.py runs in: current PyTorch from PyPI (the
# issue's baseline), in build/venv-torch (git-ignored). Usage: bench/setup_torch_venv.sh [venv dir]
# Set TORCH_SPEC (e.g. TORCH_SPEC="torch==2.15.0") to pin a version.
#
# PyPI's only Linux x86-64 torch wheel is the CUDA build. `pip install --no-deps torch` is not
# enough even on a CPU-only machine: importing torch loads libtorch_cuda.so, which links the CUDA
# runtime libraries (libcufile, libcudart, cuBLAS, cuDNN, NCCL, ...) shipped as nvidia-* / cuda-*
# wheels. So the full dependency set is installed (about 2.5 GB on disk in total); the CUDA
# libraries are loaded but unused, and torch runs on the CPU.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$root/build/venv-torch"}
python=${PYTHON:-/usr/bin/python3}

"$python" -m venv "$venv"
# numpy: torch warns without it, and scripts/make_*_fixture.py write tensors through it.
"$venv/bin/pip" install --index-url https://pypi.org/simple "${TORCH_SPEC:-torch}" numpy
"$venv/bin/python" -c '
import torch
x = torch.randn(64, 64, requires_grad=True)
(x @ x).sum().backward()
assert x.grad.shape == (64, 64)
print("torch", torch.__version__, "works on the CPU; cuda available:", torch.cuda.is_available())
'
