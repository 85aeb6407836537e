"""Helpers shared by the tests (and the benchmarks in bench/): scenes, photos, analytic models,
adapter layouts, workflow definitions. Nothing here is part of the pack."""
