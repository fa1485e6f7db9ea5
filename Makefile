GO ?= go

.PHONY: test demo deps vet fmtcheck

# Installs what tests need (Debian packages when root, Go modules).
deps:
	bash .ci/deps

vet:
	$(GO) vet ./...

fmtcheck:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The README's test command; .ci/run calls it.
test: deps vet fmtcheck
	$(GO) test -race -timeout 45m ./...

# The README's main job.
demo: deps
	$(GO) run ./examples/swarm
