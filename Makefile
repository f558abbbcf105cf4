# Thin wrappers over the CLI and pytest. `make run` serves the demo; `make test` runs every test.
PY ?= python3
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install run test test-python test-js bench

install:
	$(PY) -m pip install -q -e '.[ml,test]'

run: install
	looplabel db upgrade
	looplabel demo --base-url http://$(HOST):$(PORT)
	looplabel serve --host $(HOST) --port $(PORT)

# Installs what the tests need (apt Chromium, pip extras), starts PostgreSQL/Redis if they are
# down, then runs the Python and the JavaScript tests.
test:
	bash .ci/setup
	$(MAKE) test-python test-js

test-python:
	$(PY) -m pytest -ra -p no:cacheprovider

test-js:
	node --test frontend/test/

bench:
	$(PY) bench/stitch.py
	$(PY) bench/metrics.py
	$(PY) bench/postprocess.py
	$(PY) bench/model.py
