# Thin wrapper over CMake. `make demo` runs the main job, `make test` runs the tests.
JOBS ?= $(shell nproc)
.PHONY: all deps build demo test example test-asan bench clean fuzz

all: build

deps:
	@bash scripts/install_deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build build -j $(JOBS)

demo: build
	./build/apps/train_lra

test: build
	cd build && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory example

# Installs luna into build/install and builds examples/mlp against it as an outside project would.
example: build
	@cmake --install build --prefix build/install >/dev/null
	@cmake -S examples/mlp -B build/example -DCMAKE_PREFIX_PATH=$(CURDIR)/build/install >/dev/null
	@cmake --build build/example -j $(JOBS)
	./build/example/train_mlp build/example/mlp.safetensors

test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -L 'unit|gradcheck'

bench: build
	./build/bench/bench_matmul && ./build/bench/bench_bandwidth

clean:
	rm -rf build build-asan build-fuzz

# libFuzzer targets (tests/fuzz/fuzz_*.cpp) built by clang with ASan+UBSan, each run for
# FUZZ_SECONDS (or the seconds in tests/fuzz/<name>.seconds: 30 for the data readers) over a copy
# of its seed corpus; fails on any crash or sanitizer report.
FUZZ_SECONDS ?= 60
fuzz:
	@bash scripts/install_fuzz_deps.sh
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DLUNA_BUILD_FUZZ=ON -DLUNA_CUDA=OFF -DLUNA_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target luna_fuzzers
	@bash scripts/run_fuzzers.sh build-fuzz $(FUZZ_SECONDS)
