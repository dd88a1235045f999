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

# Every Envoy file subscription holds an inotify instance; the suite runs two meshes at once.
INOTIFY_NEEDED := 512
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
test: setup inotify chromium
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

down:
	$(BIN)/harness down

# `harness down` removes the run state it wrote (XDG_STATE_HOME/mesh-harness or HARNESS_STATE_DIR),
# nothing else: no folder is removed by name here.
clean: down
	rm -rf $(VENV)
