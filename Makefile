# The two commands: `make demo` and `make test`. Both create .venv and install the package first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test test-slow demo clean horovod

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

test: $(STAMP) horovod
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

demo: $(STAMP)
	@echo "make demo arrives with the training issue (#4); see README.md." && exit 1

clean:
	rm -rf $(VENV) build *.egg-info

# Horovod 0.28.1 built from source for CPU against TF 2.21 (see tools/build_horovod.sh).
horovod: $(STAMP)
	tools/build_horovod.sh $(VENV)
