# Urne build, test and verification targets. `make verify` runs what CI runs.
GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/urne-vote/urne/node.Version=$(VERSION)
PKGS      := ./...
DEMO_DIR  ?= $(CURDIR)/.demo

.PHONY: bench-etcd bench-import all build demo test test-short race fmt fmt-check vet lint fuzz proto tools verify bench clean chaos

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

# Go benchmarks of the hot paths, then `urne bench cast` on a fresh local 2+2+1 cluster.
# The figures go to the terminal; BENCHMARKS.md records them with the machine.
BENCH_DURATION ?= 30s
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./keyring ./fsm ./ballot
	$(GO) test -run '^$$' -bench 'SealPreparedSecret|HashSecret' -benchmem ./node
	rm -rf $(CURDIR)/.bench
	./bin/urne dev up --dir $(CURDIR)/.bench --topology 2+2+1
	./bin/urne bench cast --cluster $(CURDIR)/.bench --voters 200000 --concurrency 256 --duration $(BENCH_DURATION); \
	  status=$$?; ./bin/urne dev down --dir $(CURDIR)/.bench; exit $$status
	$(MAKE) bench-etcd
	$(MAKE) bench-import

# A prepared roll of IMPORT_VOTERS voters (secret_bcrypt at cost 10) imported into a fresh local
# 2+2+1 cluster: time, peak resident memory of each node, data directory bytes.
IMPORT_VOTERS ?= 1000000
bench-import: build
	rm -rf $(CURDIR)/.bench-import && mkdir -p $(CURDIR)/.bench-import
	$(GO) run ./test/benchroll -voters $(IMPORT_VOTERS) -out $(CURDIR)/.bench-import/roll.prepared.csv
	./bin/urne dev up --dir $(CURDIR)/.bench-import/cluster --topology 2+2+1
	./bin/urne election create --cluster $(CURDIR)/.bench-import/cluster --name "import bench"
	./bin/urne election import --cluster $(CURDIR)/.bench-import/cluster --file $(CURDIR)/.bench-import/roll.prepared.csv; \
	  status=$$?; for p in $$(./bin/urne dev ps --dir $(CURDIR)/.bench-import/cluster -o json | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$$'); do \
	    grep -H VmHWM /proc/$$p/status; done; du -sb $(CURDIR)/.bench-import/cluster/nodes/*/data; \
	  ./bin/urne dev down --dir $(CURDIR)/.bench-import/cluster; exit $$status

# Urne against etcd (Debian's etcd-server, installed when missing), 3 nodes each, 1 KiB writes
# from 16, 64 and 256 clients; writes docs/bench-compare.svg and prints a Markdown table.
bench-etcd: build
	@command -v etcd >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq etcd-server)
	cd test/etcdbench && $(GO) build -o $(CURDIR)/bin/etcdbench .
	./bin/etcdbench --urne bin/urne --etcd etcd --duration $(BENCH_DURATION) --out bench-compare.json --svg docs/bench-compare.svg

clean:
	rm -rf bin .demo .bench .bench-import .chaos
