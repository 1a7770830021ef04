# The two commands that matter:  make study  (runs the study)  and  make test  (runs the tests).
# Both create .venv with python3 and install pinned dependencies first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STORE  ?= data/runs

.PHONY: setup test study notebooks results paper lab constraints clean-venv FORCE

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

test: setup
	$(BIN)/python -m pytest

# One executed notebook per parameter file: notebooks/params/NOTEBOOK.RUN.yaml → build/notebooks/NOTEBOOK.RUN.ipynb.
# Two run side by side (each trains on every core), so one fills the CPU while the other starts
# up or plots; a run that reuses another's rounds waits for it (same store, same tickets).
NB := build/notebooks
STUDY_RUNS := $(patsubst notebooks/params/%.yaml,$(NB)/%.ipynb,$(wildcard notebooks/params/*.yaml))
study: setup
	$(MAKE) -j2 notebooks
	$(MAKE) results paper

notebooks: $(STUDY_RUNS)

$(NB)/%.ipynb: notebooks/params/%.yaml FORCE
	mkdir -p $(NB)
	run=$*; $(BIN)/papermill notebooks/$${run%%.*}.ipynb $@ --cwd notebooks -f $< --no-progress-bar

$(NB)/03_imp.frankle2019.ipynb: $(NB)/02_dense.frankle2019.ipynb           # its round 0
$(NB)/04_controls.study.ipynb $(NB)/05_scale.frankle2019.ipynb: $(NB)/03_imp.frankle2019.ipynb  # its tickets
$(NB)/06_summary.frankle2019.ipynb: $(NB)/04_controls.study.ipynb $(NB)/05_scale.frankle2019.ipynb

FORCE:

results: setup
	$(BIN)/ticketlib results --store $(STORE) --out data/results.parquet --out data/results.csv

paper: setup
	$(BIN)/ticketlib paper

lab: setup
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[lab]'
	$(BIN)/jupyter lab notebooks/

constraints: setup
	head -2 constraints.txt > constraints.txt.new
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu//' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean-venv:
	rm -rf $(VENV)
