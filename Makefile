# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint proto bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kestrel up $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check services tests bench

# Generated code lands in services/common/kestrel/v1 (importable as kestrel.v1) and is committed.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=services/common --pyi_out=services/common \
		--grpc_python_out=services/common proto/kestrel/v1/*.proto

bench: $(STAMP)
	$(BIN)/python -m bench.passthrough

clean:
	rm -rf $(VENV) .pytest_cache
