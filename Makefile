# WiseHosting — see README.md. `make run` starts a development control plane,
# `make test` runs every test against a real Postgres.
GO        ?= go
# The build tags of the agent's Podman bindings: their one definition
# (scripts/lib.sh and the end-to-end test read this line). Nothing else
# needs tags: `go build ./...` without them leaves the agent out.
GOTAGS    ?= remote containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
GOFLAGS_B := -trimpath -tags '$(GOTAGS)'
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin

.PHONY: all build run test test-short e2e bench lint fuzz xcaddy clean gotags

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -ldflags '$(LDFLAGS)' -o $(BIN)/wisehosting ./cmd/wisehosting
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -ldflags '$(LDFLAGS)' -o $(BIN)/wisehosting-agent ./cmd/wisehosting-agent

run: build
	bash scripts/dev-run.sh

test:
	bash scripts/test.sh

# The whole system on this machine (also part of `make test`).
e2e:
	$(GO) test -tags '$(GOTAGS)' -count=1 -v -run TestEndToEnd ./internal/e2e

bench:
	bash scripts/bench.sh

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags '$(GOTAGS)' ./...

xcaddy:
	bash xcaddy/build.sh

gotags:
	@echo '$(GOTAGS)'

clean:
	rm -rf $(BIN)
