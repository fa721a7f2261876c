# reverify — `make demo` runs the whole pipeline on local defaults,
# `make test` runs every check CI runs.

GO            ?= go
CACHE_DIR     ?= $(HOME)/.cache/reverify
VERSITYGW     ?= $(CACHE_DIR)/bin/versitygw
VERSITYGW_VER := v1.8.0
HELM_VER      := v3.22.0
HELM          ?= $(CACHE_DIR)/bin/helm-$(HELM_VER)
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PLATFORMS     := linux/amd64 linux/arm64

export REVERIFY_VERSITYGW := $(VERSITYGW)
export REVERIFY_HELM := $(HELM)

.PHONY: demo demo-ui test chaos build vet fmt-check services tools bench clean install scaleout manifests release

## demo: migrate, seed an in-process S3, run the fake API and a worker, show the results
demo: services
	$(GO) run ./cmd/reverify demo

## demo-ui: the demo, then the dashboard on its results (images included) until Ctrl-C
demo-ui: services
	$(GO) run ./cmd/reverify demo --serve

## test: gofmt, go vet and the race-enabled tests against real PostgreSQL, Redis and S3
test: install services tools fmt-check vet
	$(GO) test -race -count=1 -timeout 20m ./...

## chaos: the chaos test at full size: workers killed, Redis and PostgreSQL restarted, API faults
chaos: services tools
	REVERIFY_CHAOS_OBJECTS=$${REVERIFY_CHAOS_OBJECTS:-5000} $(GO) test -count=1 -run TestChaos -v -timeout 30m ./worker/

## install: system packages the tests need (Debian's chromium for the dashboard's browser test)
install:
	@bash .ci/install

## scaleout: 1, 2 and 4 worker processes against the fake API (200ms latency); prints throughput of each
scaleout: services
	$(GO) run ./deploy/scaleout $(SCALEOUT_ARGS)

## bench: the performance figures as ratios against same-run baselines (about 45 min with case 6, the 10M-object run; JSON in bench/results/)
bench: services tools
	$(GO) run ./bench $(BENCH_ARGS)

## build: the reverify binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/reverify ./cmd/reverify

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## services: start local PostgreSQL and Redis when they are not running
services:
	@bash .ci/services >/dev/null

## tools: the pinned S3 server and helm the tests use (built from their Go modules once, cached)
tools: $(VERSITYGW) $(HELM)

$(VERSITYGW):
	@echo "building versitygw $(VERSITYGW_VER) (first time only, about 3 minutes)"
	GOBIN=$(dir $(VERSITYGW)) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VER)

$(HELM):
	@echo "building helm $(HELM_VER) (first time only, about 5 minutes)"
	@mkdir -p $(dir $(HELM))
	GOBIN=$(CACHE_DIR)/helm-build $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VER)
	mv $(CACHE_DIR)/helm-build/helm $@ && rmdir $(CACHE_DIR)/helm-build

## manifests: render deploy/kubernetes (the kustomize base) from the Helm chart
manifests: tools
	$(GO) test ./deploy -run TestKustomizeBase -count=1 -update

## release: static binaries for linux/amd64 and linux/arm64 in dist/ with SHA256SUMS (version: git describe; revision stamped by go build)
release:
	@rm -rf dist && mkdir -p dist
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out=dist/reverify-$(VERSION)-$$os-$$arch; \
		echo "building $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -buildvcs=auto \
			-ldflags "-s -w" -o $$out ./cmd/reverify; \
	done
	cd dist && sha256sum reverify-* > SHA256SUMS && cat SHA256SUMS

clean:
	rm -rf bin dist
