# reverify — `make demo` runs the whole pipeline on local defaults,
# `make test` runs every check CI runs.

GO            ?= go
CACHE_DIR     ?= $(HOME)/.cache/reverify
VERSITYGW     ?= $(CACHE_DIR)/bin/versitygw
VERSITYGW_VER := v1.8.0

export REVERIFY_VERSITYGW := $(VERSITYGW)

.PHONY: demo demo-ui test chaos build vet fmt-check services tools bench clean install scaleout

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

## bench: issue 6's performance figures as ratios against same-run baselines (5–10 min; JSON in bench/results/)
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

## tools: the pinned S3 server used by integration tests (built once, cached)
tools: $(VERSITYGW)

$(VERSITYGW):
	@echo "building versitygw $(VERSITYGW_VER) (first time only, about 3 minutes)"
	GOBIN=$(dir $(VERSITYGW)) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VER)

clean:
	rm -rf bin
