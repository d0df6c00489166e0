# gardend — build, test and measure. `make help` lists the targets.

SHELL    := /bin/bash
GO       ?= go
PKGS     ?= ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILDDATE ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILDDATE)
ARCHES   := amd64 arm64 arm riscv64
# Packages whose tests change with the pkcs11 build tag (SoftHSM tests).
HSM_PKGS := ./hsm/... ./node/... ./cmd/... ./origin/...
# Packages whose code changes with the nodht build tag (the nano's build).
NANO_PKGS := ./host/... ./node/... ./cmd/...
# Modules of gardend's own that go.mod substitutes for a dependency, with
# tests of their own (shim/client_golang is inert and has none).
SHIM_MODS := shim/protobuf
# Debian cross compilers per GOARCH, for cgo (pkcs11) builds.
CC_arm64   := aarch64-linux-gnu-gcc
CC_riscv64 := riscv64-linux-gnu-gcc
# qemu-user runner per GOARCH for cross-arch tests.
QEMU_arm64   := qemu-aarch64-static
QEMU_arm     := qemu-arm-static
QEMU_riscv64 := qemu-riscv64-static
BENCHTIME ?= 1s
FUZZTIME  ?= 10s

.PHONY: help setup build build-hsm demo sat-test sat-ci sat-bench vm-test vm-test-arm64 vm-faults vm-bench licenses buildroot-offline vendor dist buildroot-check cross cross-nano cross-hsm size nano-start test test-race test-cross test-hsm-arm64 lint check bench fuzz clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## install what builds and tests need (system packages as root, Go modules)
	@bash scripts/setup.sh

build: ## native binary: bin/gardend
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/gardend ./cmd/gardend

build-hsm: ## native cgo binary with PKCS#11 support: bin/gardend-pkcs11
	CGO_ENABLED=1 $(GO) build -tags pkcs11 -trimpath -ldflags "$(LDFLAGS)" -o bin/gardend-pkcs11 ./cmd/gardend

cross-hsm: ## dynamic PKCS#11 binaries: bin/gardend-pkcs11-linux-{arm64,riscv64}
	@set -e; for a in arm64 riscv64; do \
		case $$a in arm64) cc=$(CC_arm64);; riscv64) cc=$(CC_riscv64);; esac; \
		echo "build bin/gardend-pkcs11-linux-$$a ($$cc)"; \
		CGO_ENABLED=1 CC=$$cc GOOS=linux GOARCH=$$a $(GO) build -tags pkcs11 -trimpath \
			-ldflags "-s -w $(LDFLAGS)" -o bin/gardend-pkcs11-linux-$$a ./cmd/gardend; \
	done

demo: build ## the main job: a ground station and two nanos through emulated passes
	bin/gardend demo

cross-nano: ## nano-only static binaries without the DHT or the demo: bin/gardend-nano-linux-{arm64,arm,riscv64}
	@set -e; for a in arm64 arm riscv64; do \
		echo "build bin/gardend-nano-linux-$$a"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a GOARM=7 $(GO) build -tags nodht -trimpath \
			-ldflags "-s -w $(LDFLAGS)" -o bin/gardend-nano-linux-$$a ./cmd/gardend; \
	done

cross: ## static stripped binaries: bin/gardend-linux-{amd64,arm64,arm,riscv64}
	@set -e; for a in $(ARCHES); do \
		echo "build bin/gardend-linux-$$a"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a GOARM=7 $(GO) build -trimpath \
			-ldflags "-s -w $(LDFLAGS)" -o bin/gardend-linux-$$a ./cmd/gardend; \
	done

size: cross cross-nano ## bytes of each cross binary, as BENCH lines
	@for a in $(ARCHES); do echo "BENCH binary_bytes_$$a $$(stat -c %s bin/gardend-linux-$$a) bytes"; done
	@for a in arm64 arm riscv64; do echo "BENCH binary_bytes_nano_$$a $$(stat -c %s bin/gardend-nano-linux-$$a) bytes"; done

# START_BASELINE: another checkout (e.g. `git archive <commit> | tar -x -C dir`)
# measured in the same run, reported with a _baseline suffix.
START_BASELINE ?=
nano-start: ## BENCH lines: nano size, exec -> READY under qemu-aarch64-static, package init, instructions qemu translates to READY, idle RSS
	@set -o pipefail; GARDEND_START_BASELINE=$(START_BASELINE) $(GO) test -count=1 -run '^$$' -bench NanoStart -benchtime 1x ./cmd/gardend/ | awk -f scripts/benchfmt.awk

lint: ## gofmt and go vet (both build flavours)
	@out=$$(gofmt -l . 2>&1 | grep -v '^vendor/' || true); \
		if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags pkcs11 $(PKGS)
	$(GO) vet -tags nodht $(NANO_PKGS)
	@set -e; for m in $(SHIM_MODS); do (cd $$m && $(GO) vet ./...); done

test: ## unit tests, native, all flavours (pkcs11 against SoftHSM; nodht, the nano's)
	$(GO) test $(PKGS)
	@set -e; for m in $(SHIM_MODS); do (cd $$m && $(GO) test ./...); done
	$(GO) test -tags pkcs11 $(HSM_PKGS)
	$(GO) test -tags nodht $(NANO_PKGS)

test-race: ## unit tests, native, all flavours, with the race detector
	$(GO) test -race $(PKGS)
	@set -e; for m in $(SHIM_MODS); do (cd $$m && $(GO) test -race ./...); done
	$(GO) test -race -tags pkcs11 $(HSM_PKGS)
	$(GO) test -race -tags nodht $(NANO_PKGS)

test-cross: ## unit tests for arm64, arm and riscv64 under qemu-user
	@set -e; for a in arm64 arm riscv64; do \
		case $$a in arm64) q=$(QEMU_arm64);; arm) q=$(QEMU_arm);; riscv64) q=$(QEMU_riscv64);; esac; \
		echo "== go test GOARCH=$$a under $$q"; \
		CGO_ENABLED=0 GOARCH=$$a GOARM=7 GARDEND_EXEC_WRAPPER=$$q $(GO) test -exec $$q $(PKGS); \
		for m in $(SHIM_MODS); do (cd $$m && CGO_ENABLED=0 GOARCH=$$a GOARM=7 $(GO) test -exec $$q ./...); done; \
	done

test-hsm-arm64: ## pkcs11 build's tests for arm64 under qemu, against an arm64 SoftHSM
	@set -e; root=$$(bash scripts/arm64-softhsm.sh); \
	for p in $(HSM_PKGS); do \
		echo "== go test -tags pkcs11 GOARCH=arm64 $$p under qemu-aarch64-static -L $$root"; \
		CGO_ENABLED=1 CC=$(CC_arm64) GOARCH=arm64 GARDEND_REQUIRE_SOFTHSM=1 GARDEND_EXEC_WRAPPER=$(QEMU_arm64) \
		GARDEND_SOFTHSM_MODULE=/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
		QEMU_LD_PREFIX=$$root $(GO) test -tags pkcs11 -exec $(QEMU_arm64) $$p; \
	done

sat-test: ## every flight-bench scenario: QEMU nanos behind the emulated radio link (root)
	GARDEND_SAT=1 $(GO) test -count=1 -timeout 30m -v -run . ./test/sat/

sat-ci: ## the flight-bench scenarios CI runs: gap work, a crash mid-drain, two stations; arm64 nano (root)
	GARDEND_SAT=1 $(GO) test -count=1 -timeout 15m -v -run 'TestGapWorkArrivesArm64|TestNanoKilledMidDrain|TestTwoStationsArm64' ./test/sat/

# SAT_SEEDS: loss seeds of the radio (GARDEND_SAT_SEED), one bench run each
# (about 8 minutes a seed: the flight bench and the two tail-loss benches);
# with a fixed seed the same packets are lost every run (test/sat/README.md),
# so the default takes four. Each seed's BENCH lines
# are printed as they come; after the last seed, scripts/benchseeds.awk
# prints each figure's median across the seeds (with min and max).
# SAT_SEEDS=0 runs one seed, without a summary. A seed that fails is named
# and fails the target, after the other seeds have run.
SAT_SEEDS ?= 0 10 20 30
sat-bench: ## flight-bench figures as BENCH lines, per loss seed in SAT_SEEDS (default 4) + medians across them (root)
	@set -o pipefail; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; failed=""; \
	for s in $(SAT_SEEDS); do echo "# loss seed $$s" | tee -a "$$out"; t0=$$(date +%s); \
		GARDEND_SAT=1 GARDEND_SAT_SEED=$$s $(GO) test -count=1 -timeout 15m -run '^$$' -bench FlightBench -benchtime 1x ./test/sat/ \
			| awk -f scripts/benchfmt.awk | tee -a "$$out" || { echo "# seed $$s FAILED"; failed="$$failed $$s"; }; \
		echo "# seed $$s took $$(( $$(date +%s) - t0 )) s"; \
	done; \
	awk -f scripts/benchseeds.awk "$$out"; \
	[ -z "$$failed" ] || { echo "sat-bench: failed with loss seeds:$$failed" >&2; exit 1; }

# Full-system guests (test/sat/vm): gardend booted by systemd in a Debian 12
# guest under qemu-system TCG. Images are cached in GARDEND_VM_CACHE
# (default /var/cache/gardend-vm), keyed by the hash of their inputs.
vm-test: ## amd64 guest: gardend under systemd (READY, STATUS, watchdog, reload), one pass via linkemu (root)
	GARDEND_VM=1 $(GO) test -count=1 -timeout 30m -v -run 'TestVMNanoUnderSystemdAmd64' ./test/sat/

vm-faults: ## amd64 guest faults: power cut mid-drain, full root disk, bad configuration (root)
	GARDEND_VM=1 $(GO) test -count=1 -timeout 60m -v -run 'TestVM(PowerCutMidDrain|FullDisk|BadConfig)Amd64' ./test/sat/

vm-test-arm64: ## the aarch64 guest (its first image build takes ~10 minutes through qemu-user) (root)
	GARDEND_VM=1 $(GO) test -count=1 -timeout 60m -v -run 'TestVMNanoUnderSystemdArm64' ./test/sat/

# VM_BENCH selects the benchmarks (e.g. VM_BENCH='VMAmd64' to skip arm64).
VM_BENCH ?= VMAmd64|VMArm64|QemuUserNanoFirstDelivery
vm-bench: ## BENCH lines: guest image build, boot to READY (amd64, arm64), AOS to first delivery vs qemu-user (root)
	@set -o pipefail; GARDEND_VM=1 GARDEND_SAT=1 $(GO) test -count=1 -timeout 90m -run '^$$' -bench '$(VM_BENCH)' -benchtime 1x ./test/sat/ | awk -f scripts/benchfmt.awk

licenses: ## regenerate THIRD_PARTY_LICENSES from the linked modules (offline, module cache)
	$(GO) run ./scripts/licenses

check: export GARDEND_REQUIRE_SOFTHSM = 1
check: export GARDEND_REQUIRE_PROMETHEUS = 1
check: setup lint test-race test-cross test-hsm-arm64 sat-ci vm-test ## the README's test command: everything CI runs

bench: export GARDEND_REQUIRE_SOFTHSM = 1
# -p 1: one package's benchmarks at a time, so no package's figures are
# taken while another package's benchmarks load the machine's two cores.
bench: ## benchmarks, one `BENCH <name> <value> <unit>` line per figure
	@set -o pipefail; $(GO) test -p 1 -tags pkcs11 -run '^$$' -bench . -benchtime $(BENCHTIME) $(PKGS) | awk -f scripts/benchfmt.awk

fuzz: ## every fuzz target for FUZZTIME (default 10s) each
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		d=$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "== $$d $$t"; (cd $$d && $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) .); \
		done; \
	done

vendor: ## vendor/ for offline builds (Buildroot builds with -mod=vendor, GOPROXY=off)
	$(GO) mod vendor

dist: vendor ## dist/gardend-VERSION.tar.gz: the source with vendor/, buildable offline
	@mkdir -p dist
	tar --exclude=./bin --exclude=./dist --exclude=./.git --exclude=./.cache \
		--transform 's,^\.,gardend-$(VERSION),' -czf dist/gardend-$(VERSION).tar.gz .
	@echo dist/gardend-$(VERSION).tar.gz

# BUILDROOT_DIR: a Buildroot checkout (not part of this repository).
BUILDROOT_DIR ?= ../buildroot
# check-package needs python3-magic and flake8 (Debian packages).
PYTHON3 ?= /usr/bin/python3
buildroot-check: vendor ## lint buildroot/ with check-package, resolve it with printvars, build as the recipe does
	@test -x $(BUILDROOT_DIR)/utils/check-package || { echo "no Buildroot at BUILDROOT_DIR=$(BUILDROOT_DIR)"; exit 1; }
	$(PYTHON3) $(BUILDROOT_DIR)/utils/check-package -b buildroot/Config.in buildroot/external.mk buildroot/external.desc \
		buildroot/package/gardend/Config.in buildroot/package/gardend/gardend.mk
	@set -e; out=$$(mktemp -d); \
	$(MAKE) -s -C $(BUILDROOT_DIR) BR2_EXTERNAL=$(CURDIR)/buildroot O=$$out qemu_aarch64_virt_defconfig >/dev/null; \
	cd $$out && $(BUILDROOT_DIR)/support/kconfig/merge_config.sh -m .config \
		$(CURDIR)/buildroot/configs/gardend_qemu_aarch64_virt.fragment >/dev/null && $(MAKE) -s olddefconfig >/dev/null; \
	$(MAKE) -s -C $$out printvars VARS='GARDEND_SITE GARDEND_GOMOD GARDEND_BUILD_TARGETS GARDEND_GO_ENV GARDEND_INSTALL_BINS'; \
	rm -rf $$out
	@echo "== offline build as the recipe runs it (GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0 GOARCH=arm64)"
	GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0 GOARCH=arm64 $(GO) build -trimpath -o /dev/null gardend/cmd/gardend

# The Buildroot package built with no network (unshare -n): override file,
# toolchain wrapper and defconfig are generated into BR_OFFLINE_DIR (default
# /var/tmp/gardend-buildroot-offline); see buildroot/README.md.
buildroot-offline: vendor ## build the gardend Buildroot package for aarch64 offline and check it (root, BUILDROOT_DIR)
	@test -f $(BUILDROOT_DIR)/Makefile || { echo "no Buildroot at BUILDROOT_DIR=$(BUILDROOT_DIR)"; exit 1; }
	BUILDROOT_DIR=$(abspath $(BUILDROOT_DIR)) bash scripts/buildroot-offline.sh

clean: ## remove build outputs
	rm -rf bin dist
