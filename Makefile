# Fresh clone: `make train` (install + default training) or `make test` (install + every test).
# Re-running is fast: each step is redone only when its inputs changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 resolves to the CPU wheel provided on this project's machines; never a CUDA build.
TORCH := torch==2.13.0
CSRC := $(shell find csrc -type f) setup.py
CORE := $(shell find csrc/core tests/cpp -type f) CMakeLists.txt
JOBS := $(shell nproc)

.PHONY: install train test test-python test-cpp lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q $(TORCH) -r requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(CSRC)
	$(BIN)/python -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/dgl-tgnn train --config configs/tgn-tgb.yaml --epochs 1

build/cmake/.built: $(CORE)
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build build/cmake -j $(JOBS) > /dev/null
	touch $@

build/cmake-sanitize/.built: $(CORE)
	cmake -S . -B build/cmake-sanitize -DCMAKE_BUILD_TYPE=Debug -DDGL_TGNN_SANITIZE=ON > /dev/null
	cmake --build build/cmake-sanitize -j $(JOBS) > /dev/null
	touch $@

test-cpp: build/cmake/.built build/cmake-sanitize/.built
	ctest --test-dir build/cmake --output-on-failure
	ctest --test-dir build/cmake-sanitize --output-on-failure

test-python: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

test: test-cpp test-python

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf build $(VENV) *.egg-info dgl_tgnn/_C*.so
