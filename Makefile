# The two commands of the README:
#   make book   install, execute every notebook once (quick profile), build the HTML book in _book/html
#   make test   install, unit tests, every notebook through nbmake and the strict book build,
#               a smoke run of every notebook's full profile, then the built site in a real
#               browser (headless Chromium) and the recorded training times
PYTHON ?= python3

.PHONY: install book test unit smoke site strip clean

install:
	$(PYTHON) -m pip install -r requirements.txt

book: install
	$(PYTHON) -m tools.build_book

test: install
	$(PYTHON) -m pytest tests
	$(PYTHON) -m tools.build_book
	$(PYTHON) -m tools.smoke_run
	$(PYTHON) -m pytest site_tests

unit:
	$(PYTHON) -m pytest tests

smoke:  # every notebook's full profile for a few steps, on stand-in data
	$(PYTHON) -m tools.smoke_run

site:   # the browser test alone, on an already built _book/html
	$(PYTHON) -m pytest site_tests

strip:
	$(PYTHON) -m tools.notebooks strip

clean:
	rm -rf _book _build
