# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt

.PHONY: demo test docs docs-check install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps re-run the install only when the packaging files change.
$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt | $(PY)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/hybridunet demo

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(MAKE) docs-check
	$(PY) -m pytest

# The docs site, into site/ (git-ignored); `mkdocs serve` shows it while you write.
# NO_MKDOCS_2_WARNING: material's end-of-life banner, said once here instead of at every build.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs
docs: install-dev
	$(MKDOCS) build --strict

# The same strict build into a folder that is removed after: a broken link, page or docstring
# fails. Not --quiet: it drops the warnings that --strict counts. mkdocs says how long it took.
docs-check: install-dev
	@site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && $(MKDOCS) build --strict --site-dir "$$site"

clean:
	rm -rf $(VENV) build *.egg-info site
