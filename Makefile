# sim2real developer entry points. `make test` on a fresh machine creates the venv,
# installs everything and runs the fast test suite.

PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
STAMP = $(VENV)/.installed
# The CPU build of torch these machines carry; any other spec pulls GBs of CUDA wheels.
TORCH_SPEC = torch==2.13.0
PIP = $(PY) -m pip install -q

.PHONY: all install render-deps test test-all lint demo bench wheel-test clean distclean

all: test

install: $(STAMP)

# Reinstalls only when pyproject.toml or the ROS package's setup.py changes (or the venv is
# gone). The ROS 2 package is installed too, so its console entry points (policy_node)
# exist in the venv for the tests.
$(STAMP): pyproject.toml deploy/ros2_ws/src/sim2real_ros/setup.py
	@test -x $(PY) || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) $(TORCH_SPEC)
	$(PIP) -e '.[dev,ros,mjx,warp]'
	$(PIP) --no-build-isolation -e deploy/ros2_ws/src/sim2real_ros
	@touch $@

# Offscreen rendering (sim2real play --video) needs EGL or OSMesa. Debian images carry
# EGL (libegl1, libegl-mesa0); where no backend works, install OSMesa from Debian.
render-deps: $(STAMP)
	@if $(PY) -c "import sys; from sim2real.sim.render import rendering_available as r; ok, why = r(); print(why); sys.exit(0 if ok else 1)"; then \
		echo "offscreen rendering works"; \
	else \
		echo "installing OSMesa (libosmesa6)"; \
		apt-get install -y -q libosmesa6 || sudo apt-get install -y -q libosmesa6; \
	fi

test: $(STAMP)
	$(PY) -m pytest -q -ra

# -m "" overrides the `-m 'not slow'` in pyproject's addopts: slow tests run too.
test-all: $(STAMP)
	$(PY) -m pytest -q -ra -m ""

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole loop on the embedded default (arm-reach, CPU): train, export, HIL, sysid,
# fine-tune, HIL, report; prints where the report is.
demo: $(STAMP)
	$(VENV)/bin/sim2real pipeline --task arm-reach

bench: $(STAMP)
	@set -e; for f in benchmarks/*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f" >&2; \
		$(PY) "$$f"; \
	done

# Builds the wheel from the working tree into a temporary folder (no build isolation:
# setuptools and wheel are in the venv, and it is fast), then installs and checks it in
# a fresh venv (tests/test_packaging.py).
wheel-test: $(STAMP)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	rm -rf build; \
	if ! $(PY) -m build --wheel --no-isolation --outdir "$$tmp" . >"$$tmp/build.log" 2>&1; then \
		cat "$$tmp/build.log"; rm -rf build sim2real.egg-info; exit 1; \
	fi; \
	rm -rf build sim2real.egg-info; \
	echo "built $$(basename "$$tmp"/sim2real-*.whl)"; \
	SIM2REAL_WHEEL="$$(ls "$$tmp"/sim2real-*.whl)" $(PY) -m pytest -q -ra tests/test_packaging.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
