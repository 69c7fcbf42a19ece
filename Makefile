# Two entry points: `make test` and `make run`. Each builds its own .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT_PACKAGES := prometheus prometheus-alertmanager chromium chromium-driver

.PHONY: test run lint typecheck pytest validate system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
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

pytest: $(STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck pytest

validate: $(STAMP)
	$(BIN)/govwatch validate targets.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
