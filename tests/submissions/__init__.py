"""Optimizers the tests submit to ``python -m bench submit``: one good, each other one bad in one way."""
