# Urne build, test and verification targets. `make verify` runs what CI runs.
GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/urne-vote/urne/node.Version=$(VERSION)
PKGS      := ./...
DEMO_DIR  ?= $(CURDIR)/.demo

.PHONY: bench-etcd etcd-server all build demo test test-short race fmt fmt-check vet lint fuzz proto tools verify bench clean chaos

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/urne ./cmd/urne

demo: build
	./bin/urne demo --dir $(DEMO_DIR)

# The test command of the README and of CI: vet, then every test under the race detector.
test: build vet
	URNE_BIN=$(CURDIR)/bin/urne $(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(GO) test -race -count=1 -timeout 10m -tags failpoints ./internal/failpoint/ \
	  ./test/chaos/ -run 'TestFollowerRecovers|TestFsyncErrors|TestDiskFull|TestClockJumps|TestPointsFire|TestOffset'

test-short:
	$(GO) test -short -count=1 $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags failpoints $(PKGS)

lint:
	$(GOBIN)/staticcheck $(PKGS)
	$(GOBIN)/staticcheck -tags failpoints $(PKGS)

# Each fuzz target for a short while; FUZZTIME=5m for a longer run.
FUZZTIME ?= 10s
fuzz:
	@for t in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/func //'); do \
	  pkg=$$(grep -rlE "^func $$t\(" --include='*_test.go' . | xargs dirname); \
	  echo "== $$pkg $$t"; $(GO) test -run=^$$ -fuzz=^$$t$$ -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

proto:
	protoc --proto_path=. --go_out=. --go_opt=paths=source_relative \
	  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
	  transport/urnepb/urne.proto fsm/fsmpb/command.proto

tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

verify: fmt-check vet lint test

# Every chaos scenario (in-process, failpoints, real processes, Docker when an engine answers)
# CHAOS_RUNS times, each fault held CHAOS_SCALE times longer than in CI; then docs/RELIABILITY.md.
# `make test` runs the short set once (scenarios that call chaos.Full are skipped there).
CHAOS_RUNS  ?= 3
CHAOS_SCALE ?= 1
CHAOS_DIR   := $(CURDIR)/.chaos
chaos:
	rm -rf $(CHAOS_DIR) && mkdir -p $(CHAOS_DIR)
	URNE_CHAOS_FULL=1 URNE_CHAOS_SCALE=$(CHAOS_SCALE) URNE_CHAOS_RESULTS=$(CHAOS_DIR)/results.jsonl \
	  URNE_CHAOS_ARTIFACTS=$(CHAOS_DIR) $(GO) test -tags failpoints -count=$(CHAOS_RUNS) -timeout 180m \
	  ./test/chaos/ ; status=$$?; \
	$(GO) run ./test/chaos/reliability -in $(CHAOS_DIR)/results.jsonl -runs $(CHAOS_RUNS) -scale $(CHAOS_SCALE) \
	  -out docs/RELIABILITY.md && echo "wrote docs/RELIABILITY.md" && exit $$status

# Every measurement of the throughput work in one run, then BENCHMARKS.md written from its
# results (test/benchreport): Go benchmarks of the hot paths, then each `urne bench` command on
# a fresh local cluster (JSON in .bench/results), etcd beside Urne. About an hour on 2 cores.
# A bench that fails leaves no result; the report names it and `make bench` fails at the end.
BENCH_DIR      := $(CURDIR)/.bench
BENCH_DURATION ?= 60s
BENCH_VOTERS   ?= 1000000
BENCH_KILLS    ?= 20
comma          := ,

# $(call bench-json,NAME,ARGS): `urne ARGS -o json`, kept as .bench/results/NAME.json only when
# it succeeds.
define bench-json
	-./bin/urne $(2) -o json > $(BENCH_DIR)/$(1).json && mv $(BENCH_DIR)/$(1).json $(BENCH_DIR)/results/$(1).json
endef

# $(call bench-on-cluster,NAME,ARGS): the same on a fresh local 2+2+1 cluster in .bench/NAME.
define bench-on-cluster
	rm -rf $(BENCH_DIR)/$(1)
	./bin/urne dev up --dir $(BENCH_DIR)/$(1) --topology 2+2+1 --election bench >/dev/null
	$(call bench-json,$(1),$(2) --cluster $(BENCH_DIR)/$(1))
	./bin/urne dev down --dir $(BENCH_DIR)/$(1) >/dev/null
endef

bench: build etcd-server
	rm -rf $(BENCH_DIR) && mkdir -p $(BENCH_DIR)/results
	$(GO) test -run '^$$' -bench . -benchmem ./keyring ./fsm ./ballot > $(BENCH_DIR)/gobench.txt
	$(GO) test -run '^$$' -bench 'SealPreparedSecret|HashSecret|RollSpoolPasses' -benchmem ./node >> $(BENCH_DIR)/gobench.txt
	$(GO) test -run '^$$' -bench 'RaftLogAppend' -benchtime 500x -benchmem ./node >> $(BENCH_DIR)/gobench.txt
	mv $(BENCH_DIR)/gobench.txt $(BENCH_DIR)/results/gobench.txt
	$(call bench-on-cluster,cast,bench cast --voters $(BENCH_VOTERS) --concurrency 256 --duration $(BENCH_DURATION))
	-$(MAKE) bench-etcd ETCDBENCH_OUT=$(BENCH_DIR)/results/compare.json
	$(GO) run ./test/benchroll -voters $(BENCH_VOTERS) -out $(BENCH_DIR)/roll.csv
	$(call bench-on-cluster,election,bench election --roll $(BENCH_DIR)/roll.csv)
	$(call bench-json,login,bench login --dir $(BENCH_DIR)/login --nodes 1$(comma)3$(comma)5 --duration 20s)
	$(call bench-json,suite,bench suite --dir $(BENCH_DIR)/suite)
	$(call bench-on-cluster,failover,drill failover --mode hard --count $(BENCH_KILLS) --concurrency 64)
	$(call bench-json,restore,bench restore --ballots $(BENCH_VOTERS) --dir $(BENCH_DIR)/restore)
	$(GO) run ./test/benchreport -results $(BENCH_DIR)/results -out BENCHMARKS.md \
	  -params "make bench BENCH_DURATION=$(BENCH_DURATION) BENCH_VOTERS=$(BENCH_VOTERS) BENCH_KILLS=$(BENCH_KILLS)"

# Urne against etcd, 3 nodes each, 1 KiB writes from 16, 64 and 256 clients; writes
# docs/bench-compare.svg and prints a Markdown table.
ETCDBENCH_OUT ?= $(BENCH_DIR)/compare.json
bench-etcd: build etcd-server
	cd test/etcdbench && $(GO) build -o $(CURDIR)/bin/etcdbench .
	mkdir -p $(dir $(ETCDBENCH_OUT))
	./bin/etcdbench --urne bin/urne --etcd etcd --duration $(BENCH_DURATION) --out $(ETCDBENCH_OUT) --svg docs/bench-compare.svg

# Debian's etcd-server, for the comparison.
etcd-server:
	@command -v etcd >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq etcd-server)

clean:
	rm -rf bin .demo .bench .chaos
