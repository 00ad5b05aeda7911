"""Developer scripts; a package so tests can `from scripts.comfy_harness import ...`."""
