# Two entry points: `make test` and `make run`. Each builds its own .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT_PACKAGES := prometheus prometheus-alertmanager chromium chromium-driver

.PHONY: test run demo lint typecheck pytest validate system-deps clean

# Two stamps: `make run` needs only the runtime dependencies, `make test` also the test tools.
RUNTIME_STAMP := $(VENV)/.installed-runtime

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the integration tests drive for real (Prometheus, Alertmanager,
# headless Chromium). Installed only when missing, and only when we are root.
system-deps:
	@missing=""; \
	for cmd in prometheus:prometheus promtool:prometheus amtool:prometheus-alertmanager \
	           chromium:chromium chromedriver:chromium-driver; do \
	  bin=$${cmd%%:*}; pkg=$${cmd#*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (not root: tests that need them will be skipped)"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers: most of the suite's time is spent waiting on real servers, Prometheus's `for:`
# durations and the soak's minute, not computing (one worker used 105 % of a core).
pytest: $(STAMP) system-deps
	$(BIN)/pytest --numprocesses 2

test: lint typecheck pytest

# The daemon on the shipped catalogue plus the dashboard, SQLite under ./data/, both
# supervised by one process: Ctrl-C or closing the terminal stops both.
run: $(RUNTIME_STAMP)
	@mkdir -p data
	$(BIN)/govwatch up targets.toml --db data/govwatch.sqlite3 --listen 127.0.0.1:9781 --dashboard-port 8501

# A simulated region on loopback replaying outages (the `tour` scenario in a loop),
# the daemon watching it and the dashboard: govwatch working with no internet at all.
demo: $(RUNTIME_STAMP)
	@rm -rf data/demo && mkdir -p data/demo
	@trap 'kill $$sim 2>/dev/null; wait 2>/dev/null' EXIT INT TERM HUP; \
	$(BIN)/govwatch simulate --out data/demo/region --scenario tour --loop & sim=$$!; \
	for i in $$(seq 100); do [ -f data/demo/region/targets.toml ] && break; kill -0 $$sim || exit 1; sleep 0.2; done; \
	$(BIN)/govwatch up data/demo/region/targets.toml --db data/demo/govwatch.sqlite3 \
	    --listen 127.0.0.1:9791 --dashboard-port 8502

validate: $(RUNTIME_STAMP)
	$(BIN)/govwatch validate targets.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
