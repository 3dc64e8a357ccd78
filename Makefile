# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint stop clean

$(STAMP): pyproject.toml install/setup-venv.sh install/tcmalloc.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash install/setup-venv.sh
	touch $@

demo: $(STAMP)
	$(BIN)/impasto demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

stop: $(STAMP)
	$(BIN)/impasto stop

clean:
	rm -rf $(VENV) impasto-demo.png impasto-demo-content.png impasto-demo-frames
