"""Make JAX strict in tests, so silent broadcasting bugs fail here; keep the harness's compile cache aside.

`python -m bench` keeps compiled programs in JAX's persistent cache
(``~/.cache/gdjax/jax`` by default): the tests' runs use a temporary folder
of their own instead, removed at the end, so that they neither fill a
developer's cache nor load programs it compiled.
"""

import atexit
import shutil
import tempfile

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
_compile_cache = tempfile.mkdtemp(prefix="gdjax-tests-jax-cache-")
jax.config.update("jax_compilation_cache_dir", _compile_cache)
atexit.register(shutil.rmtree, _compile_cache, ignore_errors=True)
