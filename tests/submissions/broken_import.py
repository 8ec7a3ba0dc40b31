"""A module that does not import."""

import a_package_that_is_not_installed  # noqa: F401

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0)}
