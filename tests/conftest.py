"""Make JAX strict in tests, so silent broadcasting bugs fail here."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
