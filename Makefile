# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv if missing, installs, runs the main job on built-in data
#   make test   same set-up, runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m cyan_rcbm.main --config=configs/demo.py --workdir=runs/demo

# pytest exits 5 when it collects no test: that is a failure here, said plainly.
test: $(STAMP)
	@$(PY) -m pytest -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

bench: $(STAMP)
	$(PY) scripts/bench_cyan.py
	$(PY) scripts/bench_rcbm.py

clean:
	rm -rf runs .pytest_cache
