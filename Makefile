# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test down prometheus chromium inotify clean

setup: $(STAMP) prometheus

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Prometheus and promtool come from the distribution; installed only when missing.
prometheus:
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then \
		true; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing prometheus with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
		echo "installing prometheus with sudo apt-get"; \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	else \
		echo "prometheus and promtool are needed: install your distribution's 'prometheus' package," \
		     "or put the official release's prometheus and promtool on PATH" >&2; \
		exit 1; \
	fi

# Headless Chromium renders report.html in the report tests; installed only when missing.
chromium:
	@if [ -x /usr/bin/chromium ]; then \
		true; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium with apt-get (for the report tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "note: without /usr/bin/chromium the report rendering test is skipped (apt-get install chromium)" >&2; \
	fi

# Every Envoy file subscription holds an inotify instance (about 90 per mesh); the suite runs up to
# four meshes at once (two pytest processes with a mesh each, and tests that start one of their own).
INOTIFY_NEEDED := 1024
inotify:
	@limit=$$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo $(INOTIFY_NEEDED)); \
	if [ "$$limit" -lt $(INOTIFY_NEEDED) ]; then \
		if [ "$$(id -u)" = 0 ] && sysctl -qw fs.inotify.max_user_instances=$(INOTIFY_NEEDED) 2>/dev/null; then \
			echo "raised fs.inotify.max_user_instances from $$limit to $(INOTIFY_NEEDED)"; \
		else \
			echo "fs.inotify.max_user_instances is $$limit; the tests need $(INOTIFY_NEEDED):" \
			     "sudo sysctl fs.inotify.max_user_instances=$(INOTIFY_NEEDED)" >&2; exit 1; \
		fi; \
	fi

# The headline experiment: ai-agent pods killed under load, judged by SLOs in Prometheus. A verdict,
# pass (0) or fail (1), is the job done; invalid input (2), inconclusive (3) or an interrupt fail make.
run: setup
	@$(BIN)/harness run experiments/pod-kill.yaml; code=$$?; \
	if [ $$code -gt 1 ]; then exit $$code; fi; \
	echo "make run: the run gave its verdict (harness exit $$code); the report is in the run directory above"

# The layer contracts (.importlinter) first: a broken layer fails in a second, before the tests.
# Three pytest processes run side by side, each with its own temporary folder:
# - the experiment runs (LIVE_RUNS), on a mesh of their own: they spend most of their time waiting for
#   phases to pass (about half of the live tests' time);
# - every other test that starts a mesh, on another mesh and another block of ports;
# - the tests that start no mesh (schemas, kmock, reports, loaders, suites, the bad-input corpus), at the
#   lowest CPU priority, so the meshes keep the CPU they need.
# The suite then stays well under 15 minutes on 2 cores. On Ctrl-C every pytest gets the SIGINT (tests/
# conftest.py undoes the ignored SIGINT a background job inherits); on SIGTERM the experiment runs get a
# SIGINT by their PID, so pytest still takes its mesh down, and the unit run a SIGTERM. Every log is
# printed at the end.
UNIT_TESTS := tests/badinput tests/chaos tests/cli tests/experiments tests/kind tests/mesh tests/report \
              tests/security tests/state tests/suite tests/telemetry $(wildcard tests/test_*.py)
LIVE_RUNS  := tests/local_mesh/test_experiment_runs.py
TEST_TMP   := $(or $(TMPDIR),/tmp)/mesh-harness-tests-$(shell id -u)

test: setup inotify chromium
	$(BIN)/lint-imports
	@mkdir -p $(TEST_TMP); \
	nice -n 19 $(BIN)/python -m pytest -q -p no:cacheprovider --basetemp=$(TEST_TMP)/unit $(UNIT_TESTS) \
		> $(TEST_TMP)/unit.log 2>&1 & unit=$$!; \
	HARNESS_TEST_PORT_BASES=27000-31000 $(BIN)/python -m pytest -p no:cacheprovider --basetemp=$(TEST_TMP)/runs \
		$(LIVE_RUNS) > $(TEST_TMP)/runs.log 2>&1 & runs=$$!; \
	trap 'kill $$unit 2>/dev/null; wait $$runs' INT; \
	trap 'kill $$unit 2>/dev/null; kill -INT $$runs 2>/dev/null; wait $$runs' TERM; \
	HARNESS_TEST_PORT_BASES=22000-26000 $(BIN)/python -m pytest --basetemp=$(TEST_TMP)/live \
		$(foreach t,$(UNIT_TESTS) $(LIVE_RUNS),--ignore=$(t)); live=$$?; \
	wait $$runs; runs_code=$$?; \
	wait $$unit; unit_code=$$?; \
	echo; echo "== experiment runs (ran beside the others, on a mesh of their own) =="; \
	cat $(TEST_TMP)/runs.log; \
	echo; echo "== tests that start no mesh (ran beside the others, at nice 19) =="; cat $(TEST_TMP)/unit.log; \
	if [ $$live -ne 0 ] || [ $$runs_code -ne 0 ] || [ $$unit_code -ne 0 ]; then exit 1; fi

down:
	$(BIN)/harness down

# `harness down` removes the run state it wrote (XDG_STATE_HOME/mesh-harness or HARNESS_STATE_DIR),
# nothing else: no folder is removed by name here.
clean: down
	rm -rf $(VENV)
