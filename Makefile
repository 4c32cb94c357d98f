# Thin wrapper around CMake, so that the quick start is two commands:
#   make demo   install what is missing, build, boot -> snapshot -> restore
#   make test   install what is missing, build, run every test (plain and ASan/UBSan),
#               the KVM ones on the nested platform where /dev/kvm is missing
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build build-asan guest-linux guest-debian guests demo test test-nested test-quick bench bench-quick format check-format clean

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

# Debian 12's own cloud kernel, for the stock-kernel tests: fetched once into
# ~/.cache/snapvm (apt-get download) and linked into $(BUILD)/guest/debian-cloud.
guest-debian:
	scripts/debian-kernel.sh cloud-amd64 $(BUILD)/guest/debian-cloud

# Every guest image the tests boot, linked into $(BUILD)/guest.
guests: guest-linux guest-debian

# $(call guest_images,DIR): the same for build directory DIR.
guest_images = guest/linux/build.sh $(1)/guest/linux && \
	scripts/debian-kernel.sh cloud-amd64 $(1)/guest/debian-cloud

demo: deps
	$(MAKE) build
	scripts/on-kvm.sh scripts/demo.sh $(BUILD)

# Every test, first in the plain build, then under ASan + UBSan. The KVM
# tests run on this host's /dev/kvm, or on the nested platform where it is
# missing (Linux's full boots: where KVM is not on VT-x/AMD-V); see
# scripts/run-tests.sh.
# make test-nested: the same, with every KVM test on the nested platform
# (AMD SVM under TCG) even where /dev/kvm works: a PVM or Intel host checks
# AMD this way.
test-nested: RUN_TESTS_FLAGS = --nested
test test-nested: deps
	$(MAKE) check-format build build-asan
	$(call guest_images,$(BUILD)) && $(call guest_images,$(BUILD_ASAN))
	scripts/run-tests.sh $(RUN_TESTS_FLAGS) $(BUILD) --timeout 300
	scripts/run-tests.sh $(RUN_TESTS_FLAGS) $(BUILD_ASAN) --timeout 300

# The plain build only, for a quick edit-compile-test loop.
test-quick: build guests
	scripts/run-tests.sh $(BUILD) --timeout 300

# The benchmark report: every `snapvm bench` beside QEMU microvm or its other
# baseline, in one run, into bench/results/HOST-DATE.json (every figure, the
# host, KVM flavour, revision), HOST-DATE.md (a summary) and HOST-DATE/*.png.
# The Linux guest is built first (cached) for boot-linux and restore-linux.
bench: deps
	$(MAKE) build guest-linux
	scripts/on-kvm.sh bench/report/run.sh --build $(BUILD)

# The same with fewer runs and smaller sizes (about a minute), into
# $(BUILD)/bench-results/, for everyday use.
bench-quick: deps
	$(MAKE) build guest-linux
	scripts/on-kvm.sh bench/report/run.sh --quick --build $(BUILD)

format:
	scripts/check-format.sh --fix

check-format:
	scripts/check-format.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
