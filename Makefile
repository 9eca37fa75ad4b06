# ttfs-lab: every target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATASET ?= mnist5k
CONFIG ?= configs/$(DATASET).yaml
ARGS ?=
TRIALS ?=
WORKERS ?= 1
PORT ?= 8080
SEEDS ?= 3
RUNS ?= runs

.PHONY: install train test bench sweep dashboard ablation reproduce compare browser postgres clean

install: $(STAMP)

$(STAMP): pyproject.toml tests/requirements-neurobench.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -r tests/requirements-neurobench.txt  # test-only, see the file
	touch $(STAMP)

train: $(STAMP)  ## train on DATASET (default mnist5k, offline) and test the best checkpoint
	$(VENV)/bin/ttfs-lab fit --config $(CONFIG) $(ARGS)

test: $(STAMP) browser postgres  ## the full test suite
	WANDB_MODE=disabled $(PY) -m pytest -q $(ARGS)

bench: $(STAMP)  ## speed and memory, side by side; writes bench/results.json
	$(VENV)/bin/ttfs-lab bench $(ARGS)

sweep: $(STAMP)  ## Optuna study on DATASET (resumable: the same command continues it)
	$(VENV)/bin/ttfs-lab sweep --dataset $(DATASET) $(if $(TRIALS),--trials $(TRIALS)) --workers $(WORKERS) \
	  $(if $(STORAGE),--storage $(STORAGE)) $(if $(STUDY),--study $(STUDY)) $(ARGS)

dashboard: $(STAMP)  ## optuna-dashboard on http://127.0.0.1:$(PORT) for DATASET's study (or STUDY= / STORAGE=)
	$(VENV)/bin/ttfs-lab sweep --dashboard --dataset $(DATASET) $(if $(STORAGE),--storage $(STORAGE)) \
	  $(if $(STUDY),--study $(STUDY)) --port $(PORT)

ablation: $(STAMP)  ## the component ablation of configs/ablation.yaml on DATASET
	$(VENV)/bin/ttfs-lab ablate --dataset $(DATASET) --seeds $(SEEDS) $(ARGS)

reproduce: $(STAMP)  ## the paper's ablation + naive baseline + depth on real Fashion-MNIST (docs/results.md; resumable)
	$(VENV)/bin/ttfs-lab ablate --dataset fashion_mnist --config configs/reproduce/fashion_mnist.yaml \
	  --study reproduce-fashion_mnist-lr3e-3 --set model.lr=0.003 --seeds $(SEEDS) $(ARGS)
	$(VENV)/bin/ttfs-lab ablate --dataset fashion_mnist --config configs/reproduce/fashion_mnist.yaml \
	  --grid configs/ablation_depth.yaml --study reproduce-fashion_mnist-depth --seeds $(SEEDS) $(ARGS)
	$(VENV)/bin/ttfs-lab compare 'runs/reproduce-fashion_mnist-*' --out reports/reproduce-fashion_mnist.html \
	  --ablation runs/ablations/reproduce-fashion_mnist-lr3e-3/table.json \
	  --ablation runs/ablations/reproduce-fashion_mnist-depth/table.json

compare: $(STAMP)  ## offline HTML dashboard of RUNS (folders or globs) -> reports/compare.html
	$(VENV)/bin/ttfs-lab compare $(RUNS) $(ARGS)

browser:  ## Debian's chromium for the dashboard test (skipped quietly where apt is unavailable)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: chromium not installed; the dashboard browser test will be skipped"

postgres:  ## Debian's PostgreSQL server for the sweep storage test (skipped quietly where apt is unavailable)
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) ; } || \
	  echo "note: PostgreSQL not installed; the PostgreSQL sweep test will be skipped"

clean:
	rm -rf $(VENV) .pytest_cache
