# The two commands of the README:
#   make book   install, execute every notebook once (quick profile), build the HTML book in _book/html
#   make test   install, unit tests, then every notebook through nbmake and the strict book build
PYTHON ?= python3

.PHONY: install book test unit strip clean

install:
	$(PYTHON) -m pip install -r requirements.txt

book: install
	$(PYTHON) tools/build_book.py

test: install
	$(PYTHON) -m pytest tests
	$(PYTHON) tools/build_book.py

unit:
	$(PYTHON) -m pytest tests

strip:
	$(PYTHON) tools/notebooks.py strip

clean:
	rm -rf _book _build
