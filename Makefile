# The two commands the README promises, plus the setup they share.
.PHONY: setup demo test

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/workfleet demo

test: setup
	.venv/bin/pytest
