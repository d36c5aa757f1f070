# swarmboot — run "make help" for the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/swarmboot/swarmboot/pkg/version.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOIMPORTS := golang.org/x/tools/cmd/goimports@v0.52.0
TEST_TIMEOUT ?= 40m

.PHONY: help build deps test check fmt vet staticcheck tidy bench demo boot-demo fuzz clean

help: ## Show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-12s %s\n",$$1,$$2}' $(MAKEFILE_LIST)

build: ## Build bin/swarmboot and the static bin/swarmboot-agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/swarmboot ./cmd/swarmboot
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/swarmboot-agent ./cmd/swarmboot-agent

deps: ## Install the Debian packages tests and the lab need (root)
	./scripts/deps.sh

# Packages build in parallel first; then the test binaries run one package at
# a time (-p 1): many packages boot QEMU VMs under TCG, and two packages
# booting at once on two cores would spend their boot timeouts queueing for
# the machine-wide VM slot (pkg/qemu).
test: deps ## Run every test, real boots included (root for netns/QEMU tests)
	@echo "compiling the race-enabled test binaries"; log=$$(mktemp); \
	  $(GO) test -race -count=1 -run '^$$' ./... >$$log 2>&1 || { cat $$log; rm -f $$log; exit 1; }; rm -f $$log
	$(GO) test -race -p 1 -timeout $(TEST_TIMEOUT) ./...

fmt: ## Check formatting (gofmt, goimports)
	@out=$$(gofmt -l . ; $(GO) run $(GOIMPORTS) -l .); if [ -n "$$out" ]; then echo "not formatted:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet ./...

staticcheck: ## staticcheck
	$(GO) run $(STATICCHECK) ./...

tidy: ## Fail if go mod tidy would change go.mod or go.sum
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

check: fmt vet staticcheck tidy test ## Everything CI checks: fmt, vet, staticcheck, tidy, race tests

bench: deps ## Benchmarks against reference tools (prints ratios)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

fuzz: ## Run each fuzz target for FUZZTIME (default 20s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg || exit 1; \
	  done; done

demo: deps build ## The main job: simulated vCenter + QEMU VMs netbooting into a swarm (root)
	./bin/swarmboot lab up --rotate-workers --exit

boot-demo: deps build ## Build an image from fixture images and boot it three ways in QEMU
	./bin/swarmboot demo

clean: ## Remove build outputs
	rm -rf bin out
