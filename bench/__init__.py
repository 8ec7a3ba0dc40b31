"""The gdjax benchmark harness: suites, timing, baselines, tables (`python -m bench`)."""
