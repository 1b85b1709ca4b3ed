# Thin wrapper over CMake. `make demo` runs the main job, `make test` runs the tests.
JOBS ?= $(shell nproc)
.PHONY: all deps build demo test test-asan bench clean

all: build

deps:
	@bash scripts/install_deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build build -j $(JOBS)

demo: build
	./build/apps/demo_spiral

test: build
	cd build && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -L 'unit|gradcheck'

bench: build
	./build/bench/bench_matmul && ./build/bench/bench_bandwidth

clean:
	rm -rf build build-asan
