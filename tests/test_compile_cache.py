"""The persistent compilation cache: opt-in for the library, served to a second process."""

import json
import os
import subprocess
import sys

SCRIPT = """
import json, sys
import jax
import gdjax
from gdjax.compile_cache import compile_cache_served

settings = (jax.config.jax_persistent_cache_min_compile_time_secs, jax.config.jax_compilation_cache_dir)
untouched = settings == (1.0, None)
gdjax.use_compile_cache(sys.argv[1])
value = float(jax.jit(lambda x: x * 2 + 1)(3.0))
print(json.dumps({"untouched": untouched, "value": value, **compile_cache_served()}))
"""


def _process(folder):
    env = {name: value for name, value in os.environ.items() if not name.startswith("JAX_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder)], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_a_second_process_loads_what_the_first_compiled_and_import_changes_no_setting(tmp_path):
    cold = _process(tmp_path)
    assert cold["untouched"]  # importing gdjax left JAX's cache settings as they were
    assert cold["hits"] == 0
    assert cold["misses"] >= 1
    assert list(tmp_path.glob("*-cache"))  # stored, although it compiled in far less than a second
    warm = _process(tmp_path)
    assert warm["hits"] >= 1
    assert warm["value"] == cold["value"] == 7.0
