"""The gdjax benchmark harness: suites, timing, baselines, tables (`python -m bench`)."""

INTERRUPTED = "bench: interrupted; results left as they were (the same command resumes; --fresh starts over)"
