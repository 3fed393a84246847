# The two commands of the README:
#   make book   install, execute every notebook once (quick profile), build the HTML book in _book/html
#   make test   install, unit tests, every notebook through nbmake and the strict book build,
#               then the built site in a real browser (headless Chromium)
PYTHON ?= python3

.PHONY: install book test unit site strip clean

install:
	$(PYTHON) -m pip install -r requirements.txt

book: install
	$(PYTHON) tools/build_book.py

test: install
	$(PYTHON) -m pytest tests
	$(PYTHON) tools/build_book.py
	$(PYTHON) -m pytest site_tests

unit:
	$(PYTHON) -m pytest tests

site:   # the browser test alone, on an already built _book/html
	$(PYTHON) -m pytest site_tests

strip:
	$(PYTHON) tools/notebooks.py strip

clean:
	rm -rf _book _build
