#!/usr/bin/env python3
"""safetensors interchange fixtures for tests/core/test_safetensors.cpp, made with the Python
`safetensors` package (PyPI) so luna is checked against the reference implementation both ways.

Regenerate everything (from the repository root, after building the test binary):
    cmake --build build --target test_core_test_safetensors
    python3 scripts/make_safetensors_fixture.py [--test-binary build/tests/test_core_test_safetensors]
This creates build/venv-fixtures (python3 -m venv + pip install safetensors numpy) if needed and
re-runs itself inside it, then writes into tests/fixtures/safetensors/:
  python_written.safetensors        tensors of every dtype written by the Python package
  python_written.json               the values, shapes, dtypes and metadata it holds
  luna_written.safetensors          written by luna (the test binary's hidden case
                                    "[.write-luna-fixture]"), then read here by the Python package
  luna_written.python_read.json     what the Python package read from it, checked against the
                                    values luna was asked to write
and the fuzz seed corpus tests/fuzz/corpus/safetensors/. Commit the results; the C++ tests never
need Python.

Other modes:
    make_safetensors_fixture.py python-fixture     only python_written.*
    make_safetensors_fixture.py corpus             only the fuzz seed corpus
    make_safetensors_fixture.py read-luna FILE [--record OUT.json]
        read any luna-written FILE with the Python package, print its content, and fail if the
        package rejects it; FILE == the luna fixture is also checked value by value.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "safetensors"
CORPUS = REPO / "tests" / "fuzz" / "corpus" / "safetensors"
VENV = REPO / "build" / "venv-fixtures"


def ensure_venv():
    """Re-executes this script inside build/venv-fixtures (created on first use)."""
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        return
    except ImportError:
        pass
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("make_safetensors_fixture: the venv exists but lacks safetensors/numpy; delete " + str(VENV))
    if not python.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    subprocess.check_call([str(python), "-m", "pip", "install", "-q", "safetensors", "numpy"])
    os.execv(str(python), [str(python), str(Path(__file__).resolve())] + sys.argv[1:])


# ---- values <-> bytes; numpy has no bfloat16, so BF16 goes through its bit pattern ----

NUMPY_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}
SPEC_DTYPES = dict(NUMPY_DTYPES, BF16="bfloat16")  # the names safetensors.serialize takes


def bf16_bits(values):
    """float32 -> bfloat16 bit patterns, rounding to nearest even (as luna and PyTorch do)."""
    import numpy as np
    bits = np.asarray(values, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_values(bits):
    import numpy as np
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def to_array(dtype, shape, values):
    """The little-endian array safetensors stores for `values` (BF16: uint16 bit patterns)."""
    import numpy as np
    if dtype == "BF16":
        return bf16_bits(values).reshape(shape)
    return np.asarray(values, dtype=NUMPY_DTYPES[dtype]).reshape(shape).astype(np.dtype(NUMPY_DTYPES[dtype]).newbyteorder("<"))


def stored_values(dtype, array):
    """The values an array holds, as JSON numbers (ints stay exact, BOOL becomes 0/1)."""
    import numpy as np
    flat = np.asarray(array).reshape(-1)
    if dtype == "BF16":
        return [float(v) for v in bf16_values(flat)]
    if dtype in ("F64", "F32", "F16"):
        return [float(v) for v in flat.astype(np.float64)]
    return [int(v) for v in flat.astype(np.int64)]


def serialize_file(arrays, path, metadata):
    """safetensors.serialize_file over raw arrays; supports the TensorSpec API (>= 0.7) and the
    older dict API, so BF16 can be written without PyTorch."""
    import safetensors
    keep_alive = []
    specs = {}
    for name, (dtype, array) in arrays.items():
        array = array.copy(order="C")  # not ascontiguousarray: that turns 0-dim into shape [1]
        keep_alive.append(array)
        if hasattr(safetensors, "TensorSpec"):
            specs[name] = safetensors.TensorSpec(dtype=SPEC_DTYPES[dtype], shape=list(array.shape),
                                                 data_ptr=array.ctypes.data, data_len=array.nbytes)
        else:
            specs[name] = {"dtype": SPEC_DTYPES[dtype], "shape": list(array.shape), "data": array.tobytes()}
    safetensors.serialize_file(specs, str(path), metadata=metadata)


# ---- the Python-written fixture ----

PYTHON_TENSORS = [
    ("embeddings.word.weight", "F32", [2, 3], [0.25, -1.5, 3.0, 0.001, -0.0, 1e30]),
    ("stats", "F64", [2], [3.141592653589793, -1e-300]),
    ("half", "F16", [3], [1.0, -1.0 / 3.0, 65504.0]),
    ("brain", "BF16", [2, 2], [1.0, -2.0, 0.1, 3.3895313892515355e38]),
    ("ids", "I64", [3], [0, -9007199254740992, 9007199254740992]),
    ("counts", "I32", [2], [-2147483648, 2147483647]),
    ("shorts", "I16", [2], [-32768, 32767]),
    ("signed_bytes", "I8", [3], [-128, 0, 127]),
    ("pixels", "U8", [4], [0, 1, 128, 255]),
    ("mask", "BOOL", [3], [1, 0, 1]),
    ("scalar", "F32", [], [7.5]),
    ("empty", "F32", [2, 0], []),
]
PYTHON_METADATA = {"format": "np", "written_by": "python safetensors", "note": "\u03bb \u2211"}


def write_python_fixture():
    import safetensors
    FIXTURES.mkdir(parents=True, exist_ok=True)
    arrays, expected = {}, {}
    for name, dtype, shape, values in PYTHON_TENSORS:
        array = to_array(dtype, shape, values)
        arrays[name] = (dtype, array)
        expected[name] = {"dtype": dtype, "shape": shape, "values": stored_values(dtype, array)}
    path = FIXTURES / "python_written.safetensors"
    serialize_file(arrays, path, PYTHON_METADATA)
    path.chmod(0o644)  # the package creates 0600 files
    record = {"writer": "safetensors " + safetensors.__version__, "metadata": PYTHON_METADATA, "tensors": expected}
    (FIXTURES / "python_written.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and python_written.json")


# ---- reading a luna-written file ----

# Must match interchange_tensors() / kInterchangeMetadata in tests/core/test_safetensors.cpp.
LUNA_TENSORS = [
    ("weight", "F32", [2, 3], [0.5, -1.25, 3.0, 0.001, -0.0, 65504.0]),
    ("bias", "F64", [3], [0.1, -2.0, 1e-300]),
    ("half", "F16", [2, 2], [1.0, -2.5, 0.125, 1024.0]),
    ("brain", "BF16", [4], [1.0, -3.5, 256.0, 0.0078125]),
    ("ids", "I64", [3], [0, -1, 1099511627776]),
    ("counts", "I32", [2], [-2147483648, 2147483647]),
    ("shorts", "I16", [2], [-32768, 32767]),
    ("bytes", "I8", [4], [-128, 127, 0, -1]),
    ("pixels", "U8", [3], [0, 255, 7]),
    ("mask", "BOOL", [2, 2], [1, 0, 0, 1]),
    ("scalar", "F32", [], [42.0]),
    ("empty", "F32", [0, 3], []),
]
LUNA_METADATA = {"format": "pt", "written_by": "luna", "note": "unicode: \u03bb"}


def read_with_python(path):
    """Reads `path` the way a Python user would: safe_open (mmap) for every dtype numpy has, and
    the package's deserialize() for BF16's raw bytes. Any rejection raises."""
    import numpy as np
    from safetensors import deserialize, safe_open
    raw = dict(deserialize(Path(path).read_bytes()))
    tensors = {}
    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata() or {}
        for name in f.keys():
            dtype = raw[name]["dtype"]
            shape = list(raw[name]["shape"])
            if dtype == "BF16":
                array = np.frombuffer(bytes(raw[name]["data"]), dtype="<u2").reshape(shape)
            else:
                array = f.get_tensor(name)
                assert list(array.shape) == shape, (name, array.shape, shape)
            tensors[name] = {"dtype": dtype, "shape": shape, "values": stored_values(dtype, array)}
    return metadata, tensors


def check_luna_fixture(metadata, tensors):
    """Fails unless what Python read equals what luna was asked to write."""
    problems = []
    if metadata != LUNA_METADATA:
        problems.append(f"metadata {metadata} != {LUNA_METADATA}")
    if sorted(tensors) != sorted(name for name, *_ in LUNA_TENSORS):
        problems.append(f"tensor names {sorted(tensors)}")
    for name, dtype, shape, values in LUNA_TENSORS:
        got = tensors.get(name)
        want = {"dtype": dtype, "shape": shape, "values": stored_values(dtype, to_array(dtype, shape, values))}
        if got != want:
            problems.append(f"{name}: read {got}, expected {want}")
    if problems:
        sys.exit("luna-written file does not match:\n  " + "\n  ".join(problems))


def read_luna(path, record_path=None, check=False):
    import safetensors
    metadata, tensors = read_with_python(path)
    print(f"{path}: read by safetensors {safetensors.__version__}; metadata {metadata}")
    for name, info in tensors.items():
        print(f"  {name}: {info['dtype']} {info['shape']} {info['values']}")
    if check:
        check_luna_fixture(metadata, tensors)
        print("  matches the values luna was asked to write")
    if record_path:
        record = {"reader": "safetensors " + safetensors.__version__, "metadata": metadata, "tensors": tensors}
        Path(record_path).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {record_path}")


def write_luna_fixture(test_binary):
    binary = Path(test_binary)
    if not binary.exists():
        sys.exit(f"{binary} not found: build it with `cmake --build build --target test_core_test_safetensors`"
                 " or pass --test-binary")
    subprocess.check_call([str(binary), "[.write-luna-fixture]"])
    luna_file = FIXTURES / "luna_written.safetensors"
    read_luna(luna_file, FIXTURES / "luna_written.python_read.json", check=True)


# ---- fuzz seed corpus: a few tiny valid files and near misses ----

def raw_file(header, data=b"", length=None):
    header = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def write_corpus():
    import numpy as np
    from safetensors.numpy import save
    CORPUS.mkdir(parents=True, exist_ok=True)
    seeds = {
        "valid_f32.safetensors": save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, metadata={"k": "v"}),
        "valid_mixed.safetensors": save({"a": np.array([1, -2], dtype=np.int64), "m": np.array([True, False]),
                                         "h": np.array([0.5], dtype=np.float16), "s": np.array(3, dtype=np.uint8),
                                         "e": np.zeros((0, 2), dtype=np.float64)}),
        "valid_bf16_gap.safetensors": raw_file('{"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},'
                                               '"i":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}}',
                                               bytes([1, 0, 0, 0, 0x80, 0x3F, 0x00, 0xC0])),
        "empty_header.safetensors": raw_file("{}"),
        "overlap.safetensors": raw_file('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
                                        '"b":{"dtype":"I8","shape":[2],"data_offsets":[2,4]}}', bytes(4)),
        "size_mismatch.safetensors": raw_file('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}', bytes(20)),
        "truncated.safetensors": raw_file('{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}', bytes(9)),
        "bad_metadata.safetensors": raw_file('{"__metadata__":{"step":3}}'),
        "length_past_end.safetensors": raw_file("{}", length=4096),
    }
    for name, data in seeds.items():
        (CORPUS / name).write_bytes(data)
    print(f"wrote {len(seeds)} seeds to {CORPUS}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "python-fixture", "corpus", "read-luna"])
    parser.add_argument("file", nargs="?", help="read-luna: the luna-written file")
    parser.add_argument("--record", help="read-luna: write what was read to this JSON file")
    parser.add_argument("--test-binary", default=str(REPO / "build" / "tests" / "test_core_test_safetensors"))
    args = parser.parse_args()
    ensure_venv()
    if args.mode == "read-luna":
        if not args.file:
            parser.error("read-luna needs FILE")
        is_fixture = Path(args.file).resolve() == (FIXTURES / "luna_written.safetensors").resolve()
        read_luna(args.file, args.record, check=is_fixture)
        return
    if args.mode in ("all", "python-fixture"):
        write_python_fixture()
    if args.mode in ("all", "corpus"):
        write_corpus()
    if args.mode == "all":
        write_luna_fixture(args.test_binary)


if __name__ == "__main__":
    main()
