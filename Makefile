# The two commands that matter:  make study  (rebuilds every figure, table, value and the paper from
# the shipped results in results/, training nothing)  and  make test  (runs the tests).
# Both create .venv with python3 and install pinned dependencies first. make retrain recomputes the
# shipped results from an empty (or partial) run store, then runs make study.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STORE  ?= data/runs

.PHONY: setup test test-fast study notebooks nbval retrain data results paper lab docs constraints clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e '.[study,test]'
	@# bytecode for every installed module, on every core (pip compiles on one: 10 s slower here);
	@# a few packages ship files for other Pythons, which fail to compile as they do under pip
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $@

test: setup
	$(BIN)/python -m pytest

test-fast: setup  # daily work: everything but the slow tests
	$(BIN)/python -m pytest -m 'not slow and not registry'

# One executed notebook per parameter file: notebooks/params/NOTEBOOK.RUN.yaml → build/notebooks/NOTEBOOK.RUN.ipynb;
# each writes figures/ and paper/generated/ (a fresh manifest: the paper takes nothing from earlier builds)
STUDY_RUNS  := $(sort $(wildcard notebooks/params/*.yaml))
STUDY_GRIDS := $(sort $(foreach params,$(STUDY_RUNS),$(shell sed -n 's/^\(grid\|as_run\|fixed\|[a-z_]*_grid\): *\([a-z0-9_]\+\)$$/\2/p' $(params))))  # the keys naming grids ("" names none)
study: setup
	rm -rf paper/generated figures/*.png figures/*.pdf
	mkdir -p build/notebooks
	for params in $(STUDY_RUNS); do \
	  run=$$(basename $$params .yaml); \
	  $(BIN)/papermill notebooks/$${run%%.*}.ipynb build/notebooks/$$run.ipynb --cwd notebooks -f $$params \
	    --no-progress-bar --log-level WARNING || exit 1; \
	done
	$(MAKE) paper

# The notebooks' stored outputs (what nbval compares), re-made with each notebook's default parameters
notebooks: setup
	cd notebooks && for nb in *.ipynb; do \
	  ../$(BIN)/papermill $$nb $$nb --cwd . --no-progress-bar --log-level WARNING || exit 1; \
	done

# nbval on the notebooks, as a user's CI would run it (the test suite checks the same outputs once, in its rebuild)
nbval: setup
	cd notebooks && ../$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider -q .

# Every grid the study reads, trained into $(STORE) (finished rounds are kept: a killed run resumes)
# and exported to results/GRID/ as soon as it is done, then the study rebuilt from them
retrain: setup
	for grid in $(STUDY_GRIDS); do \
	  echo "== $$grid from $$(date '+%F %T')"; \
	  $(BIN)/ticketlib run --config configs/$$grid.yaml --store $(STORE) && \
	  $(BIN)/ticketlib export $$grid --store $(STORE) || exit 1; \
	done
	$(MAKE) study

# MNIST and Fashion-MNIST into data/datasets/, checked (the first run that needs them does the same)
data: setup
	$(BIN)/ticketlib data mnist fashion_mnist

results: setup
	$(BIN)/ticketlib results --store $(STORE) --out data/results.parquet --out data/results.csv

paper: setup
	$(BIN)/ticketlib paper

lab: setup
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[lab]'
	$(BIN)/jupyter lab notebooks/

# docs/internals.md's table of hyperparameters, from ticketlib/config.py
docs: setup
	$(BIN)/python -c "from ticketlib.config import update_docs; update_docs('docs/internals.md')"

constraints: setup
	head -2 constraints.txt > constraints.txt.new
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu//' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean-venv:
	rm -rf $(VENV)
