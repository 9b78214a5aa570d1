# HyperOS — the two commands a newcomer needs:
#   make run    install what is missing, build everything, boot HyperOS
#   make test   the whole test suite (unit, fuzz seeds, end-to-end with the real image)

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
ARCH ?= $(shell go env GOARCH 2>/dev/null || echo amd64)
BUILD ?= $(CURDIR)/build
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GO_TEST_FLAGS ?=
# End-to-end packages; each boots the real image.
E2E_PKGS ?= ./image/... ./cmd/hyperos/... ./vm/... ./hyper/share/... ./tray/... ./guest/... ./app/...

.PHONY: all build bin console deps node-deps image image-arm64 run test unit e2e cross repro bench bench-image bench-cli bench-tray bench-hyper bench-live screenshot clean

all: build

## deps: install the Debian packages the build and the tests need (apt-get)
deps:
	@./scripts/deps.sh

## build: the host binaries, and cross-compiles for macOS and Windows
build:
	go build ./...

## image: build/hyperos-$(ARCH)/{vmlinuz|Image,initrd.img,manifest.txt}
image:
	$(SUDO) env "PATH=$(PATH)" BUILD=$(BUILD) ./image/build.sh $(ARCH)

## node-deps: the pinned Node.js Hypercore packages for the interop tests, installed
## once before the tests run (packages tested in parallel must not race on npm ci)
node-deps:
	cd hyper/testdata/node && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }

## image-arm64: the arm64 image (for Apple silicon); built under binfmt + qemu-user here
image-arm64:
	$(MAKE) image ARCH=arm64

## run: install what is missing, build everything, boot HyperOS and show its status
run: deps image bin
	@[ -n "$$($(BUILD)/bin/hyperos status --json 2>/dev/null)" ] || $(BUILD)/bin/hyperos init
	$(BUILD)/bin/hyperos boot
	$(BUILD)/bin/hyperos status
	@echo "Open a shell in it with: $(BUILD)/bin/hyperos ssh"

## bin: the hyperos binary in build/bin
bin:
	go build -trimpath -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev)" -o $(BUILD)/bin/hyperos ./cmd/hyperos

## console: boot the image with its console on this terminal (debugging; Ctrl-A X quits)
console: image
	./scripts/run-vm.sh $(ARCH)

## test: everything CI runs
test: deps image image-arm64 node-deps
	go vet ./...
	$(MAKE) cross
	go test $(GO_TEST_FLAGS) -count=1 -timeout 20m ./...
	go test $(GO_TEST_FLAGS) -count=1 -timeout 25m -tags e2e -p 2 $(E2E_PKGS)
	$(MAKE) repro

## unit: the fast tests only (no VM)
unit:
	go test -count=1 ./...

## e2e: the end-to-end tests only (needs `make image`)
e2e:
	go test -count=1 -timeout 25m -tags e2e -v $(E2E_PKGS)

## cross: everything but the darwin tray compiles for macOS and Windows without cgo
cross:
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 go vet ./...
	CGO_ENABLED=0 GOOS=darwin GOARCH=amd64 go build ./...
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go vet ./...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build ./...

## repro: rebuild the image from the same packages in a second tree and compare bytes
repro:
	$(SUDO) env "PATH=$(PATH)" ./scripts/check-repro.sh $(ARCH)

## bench: every benchmark
bench: bench-image bench-cli bench-hyper bench-tray bench-live

## bench-hyper: 256 MB replicated Node/Go in every direction (MB/s, × Node → Node), and a cold random 4 KiB read of a 1 GB file over 20 ms RTT
bench-hyper:
	cd hyper/testdata/node && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	go test -tags e2e -run '^$$' -bench 'BenchmarkReplicate|BenchmarkColdRandomRead4KiB20msRTT' -benchtime 1x -timeout 30m ./hyper/share/

## bench-cli: boot-to-SSH through the hyperos CLI
bench-cli: image
	go test -tags e2e -run '^$$' -bench BenchmarkCLIBoot -benchtime 3x -timeout 30m ./cmd/hyperos/

## bench-image: size, boot-to-ready-line, boot-to-SSH and systemd-analyze
bench-image: image
	go test -tags e2e -run '^$$' -bench BenchmarkBoot -benchtime 3x -timeout 30m ./image/

## bench-live: time to a shell in a 1 GB Debian container over a 100 Mbit/s, 20 ms RTT link, live-booted vs downloaded then booted (× and bytes fetched)
bench-live: image
	go test -tags e2e -run '^$$' -bench BenchmarkLiveBoot1G -benchtime 1x -timeout 60m ./guest/container/

## bench-tray: the tray's idle RSS, CPU time and wake-ups over a minute
bench-tray:
	go test -run '^$$' -bench BenchmarkTrayIdle -benchtime 1x -timeout 10m ./tray/

## screenshot: docs/tray.png, the tray and its open menu under Xvfb + xfce4-panel + dunst
screenshot: image bin
	./tray/screenshot.sh $(BUILD)/bin/hyperos docs/tray.png

clean:
	rm -rf $(BUILD)
