# Thin wrapper around CMake, so that the quick start is two commands:
#   make demo   install what is missing, build, boot -> snapshot -> restore
#   make test   install what is missing, build, run every test (plain and ASan/UBSan)
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build build-asan guest-linux demo test test-quick bench bench-quick format check-format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

$(BUILD_ASAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_ASAN) -DSNAPVM_SANITIZE=ON $(CMAKE_ARGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# The Linux guest (vmlinux, bzImage, initramfs) from Debian packages, built
# once into ~/.cache/snapvm (a few minutes) and linked into $(BUILD)/guest/linux.
guest-linux:
	guest/linux/build.sh $(BUILD)/guest/linux

demo: deps
	$(MAKE) build
	scripts/demo.sh $(BUILD)

# Every test, first in the plain build, then under ASan + UBSan.
test: deps
	$(MAKE) check-format build build-asan guest-linux
	cd $(BUILD) && ctest --output-on-failure --timeout 300
	cd $(BUILD_ASAN) && ctest --output-on-failure --timeout 300

# The plain build only, for a quick edit-compile-test loop.
test-quick: build guest-linux
	cd $(BUILD) && ctest --output-on-failure --timeout 300

# The benchmark report: every `snapvm bench` beside QEMU microvm or its other
# baseline, in one run, into bench/results/HOST-DATE.json (every figure, the
# host, KVM flavour, revision), HOST-DATE.md (a summary) and HOST-DATE/*.png.
bench: deps
	$(MAKE) build
	bench/report/run.sh --build $(BUILD)

# The same with fewer runs and smaller sizes (about a minute), into
# $(BUILD)/bench-results/, for everyday use.
bench-quick: deps
	$(MAKE) build
	bench/report/run.sh --quick --build $(BUILD)

format:
	scripts/check-format.sh --fix

check-format:
	scripts/check-format.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
