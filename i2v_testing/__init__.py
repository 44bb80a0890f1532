"""What tests and benchmarks share: the tiny-model builders, a scripted OpenAI-compatible server,
labelled photos, throwaway PostgreSQL and Prometheus servers, and job rows. Installed with the
project (editable), so `tests/` and `bench/` import it without sys.path edits. The product never
imports it (tests/unit/app/test_layers.py)."""
