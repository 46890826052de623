# One entry point for newcomers and CI. `make run` installs and runs the main job; `make test` installs and
# runs every test. Both are idempotent: a second run reinstalls nothing unless pyproject.toml or
# package-lock.json changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SOLC_VERSION := $(shell node -p "require('./package-lock.json').packages['node_modules/solc'].version" 2>/dev/null)
ANVIL_DIR := $(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin

# Keep every tool's data inside the project: ape (~/.ape), py-solc-x (~/.solcx).
export APE_DATA_FOLDER := $(CURDIR)/.data/ape
export SOLCX_BINARY_PATH := $(CURDIR)/.data/solc
export PATH := $(CURDIR)/$(BIN):$(ANVIL_DIR):$(PATH)

.PHONY: install run test compile abis clean

install: $(VENV)/.installed node_modules/.installed $(SOLCX_BINARY_PATH)/solc-v$(SOLC_VERSION)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# py-solc-x (and so ape-solidity) finds compilers as solc-v<version> executables in SOLCX_BINARY_PATH.
$(SOLCX_BINARY_PATH)/solc-v$(SOLC_VERSION): scripts/solc-shim.cjs node_modules/.installed
	mkdir -p $(SOLCX_BINARY_PATH)
	ln -sf $(CURDIR)/scripts/solc-shim.cjs $@

run: install
	$(BIN)/attest devnet up
	$(BIN)/attest devnet status

test: install
	$(BIN)/python -m pytest

compile: install
	$(BIN)/ape compile

# Regenerate the ABIs and bytecode shipped in attest/chain/abi/ after changing contracts/.
abis: compile
	$(BIN)/python scripts/export_abis.py

clean:
	-$(BIN)/attest devnet down
	rm -rf .build .data $(VENV) node_modules
