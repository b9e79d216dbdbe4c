# `make run` installs everything and starts the studio on its bundled examples;
# `make test` installs everything and runs the test suite.
PY := .venv/bin/python

.PHONY: install run test test-fast test-packaging desktop install-desktop bench examples

install:
	bash packaging/install.sh

run: install
	.venv/bin/equigen-studio

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q tests
	QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m pytest -q tests/app/test_viewer_3d.py
	QT_QPA_PLATFORM=offscreen .venv/bin/equigen-studio --self-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m packaging tests/test_packaging.py

# the everyday subset: everything but the end-to-end runs marked slow (about half the time)
test-fast: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow" tests

# on demand (minutes): the wheel built, installed in a fresh venv elsewhere and run
test-packaging: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m packaging tests/test_packaging.py

# the one-folder desktop build in dist/equigen-studio, proved with --self-test under Xvfb
desktop: install
	bash packaging/build.sh

# per-user launcher, icons and file types (the desktop build when it exists, else .venv)
install-desktop:
	bash packaging/linux/install-desktop.sh

bench: install
	.venv/bin/equigen bench speed --repeats 3

examples: install
	$(PY) packaging/make_examples.py
