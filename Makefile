# The two commands of the README's quick start, and a few conveniences.
.PHONY: demo test down bootstrap lint clean

## demo: deploy the stack to the embedded default and verify it
demo:
	scripts/demo

## test: run every test (what CI runs)
test:
	scripts/test

## down: stop what `make demo` left running
down:
	scripts/demo --down

bootstrap:
	scripts/bootstrap

lint:
	scripts/test static

clean:
	rm -rf .venv .venv-checkov build tests/output
