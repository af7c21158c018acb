# Plain targets for a fresh machine: each sets up what it needs (.venv, packages, data).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MIRROR ?= ../shared/datasets
EPOCHS ?= 3
DATA   ?= data
PORT   ?= 8888
# Jupyter's token, which whoever opens the lab must give (anyone with it can run code as you):
# empty, a new random one for each `make lab`; TOKEN=... to choose it (a password set with
# `jupyter server password` works beside it). It reaches Jupyter by the environment, which
# other users of the machine cannot read, unlike a command line.
TOKEN  ?=
LAB_ARGS ?=

.PHONY: setup data lab demo train browser test test-portable gpu-check docs clean

# The virtual environment, rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[lab,test,docs]'
	touch $@

setup: $(VENV)/.installed

# Fill data/ from a local mirror when there is one; otherwise torchvision downloads on first use.
data: setup
	@if [ -d "$(MIRROR)" ]; then $(BIN)/pepita-lab data --mirror "$(MIRROR)" --data-dir "$(DATA)"; \
	else echo "no dataset mirror at $(MIRROR): datasets will be downloaded on first use"; fi

# JupyterLab on notebooks/, on localhost, behind its token, with the data folder filled and the
# venv's kernel; first the URL that opens it (on PORT exactly: a busy port is an error, not a
# silent move to another).
lab: data
	@token="$(TOKEN)"; [ -n "$$token" ] || token=$$($(BIN)/python -c \
		"import secrets; print(secrets.token_urlsafe(32))"); \
	echo ""; echo "pepita-lab: open JupyterLab at this URL (it holds the token: keep it to yourself)"; \
	echo "    http://127.0.0.1:$(PORT)/lab?token=$$token"; echo ""; \
	JUPYTER_TOKEN="$$token" PEPITA_LAB_DATA="$(abspath $(DATA))" exec $(BIN)/jupyter lab \
		--notebook-dir=notebooks --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) \
		--ServerApp.port_retries=0 --ServerApp.allow_root=True $(LAB_ARGS)

# The quickstart without a browser: PEPITA and BP on MNIST, figures as PNG in runs/demo/figures.
demo: data
	$(BIN)/pepita-lab demo --epochs $(EPOCHS) --data-dir "$(DATA)" --out runs/demo

# Train PEPITA on MNIST with the paper's settings for a few epochs.
train: data
	$(BIN)/pepita-lab train --preset paper-mnist --epochs $(EPOCHS) --data-dir "$(DATA)" --out runs/quickstart-$$(date +%Y%m%d-%H%M%S)

# What the browser test (tests/test_browser.py) needs: Debian's chromium (apt-get, as root) and
# Playwright for Python (pip). Playwright's own browser download needs the internet: never used.
# Where neither apt-get as root nor a chromium is there, the browser test skips, saying why.
browser: setup
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "no chromium, and no apt-get as root to install it: the browser test will skip"; fi
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/pip install --quiet playwright

# The whole test suite (CPU; GPU tests skip without CUDA), the lab in a browser included.
test: data browser
	$(BIN)/python -m pytest -q

# The numerical-equality tests (goldens, population == single run, oracles, resume) again under
# PyTorch's scalar CPU kernels, MKL's SSE4.2 and oneDNN's SSE4.1 code paths and one thread: a
# test that holds only with one CPU's rounding fails here, not on a user's machine.
PORTABLE_CPU := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1
test-portable: data
	$(PORTABLE_CPU) $(BIN)/python -m pytest -q -m numerics

# On a machine with CUDA: GPU-marked tests and one MNIST epoch on the GPU.
gpu-check: data
	bash scripts/gpu_check.sh

# The documentation site (mkdocs.yml) built into site/; open site/index.html. Strict: any warning
# (a broken link or anchor, a page missing from nav, an API reference to an object that does not
# exist) fails the build. NO_MKDOCS_2_WARNING silences mkdocs-material's notice about its future.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache
