# The two commands of the README:
#   make book   install, execute every notebook once (quick profile), build the HTML book in
#               _book/html and its PDF in _book/pdf; a second `make book` re-executes only the
#               notebooks whose code or course_lib changed (`make clean book` executes all)
#   make test   install, lint, unit tests, every notebook through nbmake and the strict book build
#               (a failed outcome check fails it), a smoke run of every notebook's full profile,
#               then the built site in a real browser (headless Chromium) and the recorded results
#   make bench  the chapters' training times of the last build, normalised by a machine-speed
#               probe, and the multi-head attention benchmark (speed is a benchmark, not a test)
#   make profile  where each chapter's time goes (sections, training runs) -> benchmarks/
PYTHON ?= python3
# Installing is skipped while requirements.txt and pyproject.toml are older than the stamp,
# which lives inside the Python environment: a fresh virtual environment installs again.
STAMP := $(shell $(PYTHON) -c "import sys; print(sys.prefix)")/.attention-hands-on-installed

.PHONY: install book pdf test bench profile lint format unit smoke browser site strip clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m pip install -r requirements.txt
	touch "$@"

book: install browser
	$(PYTHON) -m tools.build_book

pdf: install browser   # print an already built _book/html to _book/pdf/attention-hands-on.pdf
	$(PYTHON) -m tools.pdf

test: install lint browser
	$(PYTHON) -m pytest tests
	$(PYTHON) -m tools.build_book --force
	$(PYTHON) -m tools.smoke_run
	$(PYTHON) -m pytest site_tests

bench: install  # normalised training times of the last build, the MHA benchmark
	$(PYTHON) -m tools.bench

profile: install  # every chapter run once more, timed by section and by training run
	$(PYTHON) -m tools.profile_chapters

lint: install   # ruff: lint and format check of the library, tools, tests and notebooks
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: install
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

unit: install
	$(PYTHON) -m pytest tests

smoke: install  # every notebook's full profile for a few steps, on stand-in data
	$(PYTHON) -m tools.smoke_run

browser: install   # find Chromium for the browser test, or install it (apt, or Playwright's)
	$(PYTHON) -m tools.browser

site:   # the browser test alone, on an already built _book/html
	$(PYTHON) -m pytest site_tests

strip:
	$(PYTHON) -m tools.notebooks strip

clean:
	rm -rf _book _build
