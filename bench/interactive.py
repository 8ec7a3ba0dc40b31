"""The speed a user at a prompt feels: a small grid's whole-process wall time, cold and warm.

The grid: gd, momentum and adam x 8 learning rates x 100,000 steps of the
textbook regression in float64 (24 runs), each optimizer one ``gdjax.sweep``,
against the same 24 runs written the usual way: one jitted single-run
``lax.scan`` per optimizer, called once per rate. Each is timed as a whole
fresh process (interpreter start, imports, tracing, compiling, running):
without the persistent compilation cache, cold (an empty cache) and warm
(the cache the cold process filled). ``python -m bench.interactive``
prints the table; it is a measurement, not a test.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

REPEATS = 3
GRID = """
import sys
import numpy as np
import gdjax
from bench.suites import LEARNING_RATE_RANGES

if sys.argv[1] != "off":
    gdjax.use_compile_cache(sys.argv[1])
problem = gdjax.linear_regression()
for optimizer in ("gd", "momentum", "adam"):
    rates = np.geomspace(*LEARNING_RATE_RANGES["linear_regression", optimizer], 8)
    result = gdjax.sweep(problem, optimizer, learning_rates=rates, steps=100_000, dtype="float64")
    np.asarray(result.final_loss)
"""
SCANS = """
import sys
import jax
import numpy as np
import gdjax
from jax import lax
from bench.suites import LEARNING_RATE_RANGES

jax.config.update("jax_enable_x64", True)
if sys.argv[1] != "off":
    gdjax.use_compile_cache(sys.argv[1])
problem = gdjax.linear_regression()
X, y, start = jax.numpy.asarray(problem.X), jax.numpy.asarray(problem.y), problem.init(0)
for optimizer in ("gd", "momentum", "adam"):

    @jax.jit
    def train(rate, optimizer=optimizer):
        transform = gdjax.OPTIMIZERS[optimizer](rate)

        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(problem.loss)(params, X, y)
            updates, state = transform.update(grads, state, params)
            return (jax.tree.map(lambda p, u: p + u, params, updates), state), loss

        (params, _), losses = lax.scan(step, (start, transform.init(start)), None, length=100_000)
        return losses[-1]

    for rate in np.geomspace(*LEARNING_RATE_RANGES["linear_regression", optimizer], 8):
        np.asarray(train(rate))
"""


def whole_process_s(script: str, cache: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, cache], check=True)
    return time.perf_counter() - started


def main() -> int:
    print("whole-process seconds, median [min, max] of", REPEATS, "processes each")
    for name, script in (("gdjax.sweep, one per optimizer", GRID), ("jitted single-run scans", SCANS)):
        times = {"no cache": [], "cold cache": [], "warm cache": []}
        for _ in range(REPEATS):
            times["no cache"].append(whole_process_s(script, "off"))
            with tempfile.TemporaryDirectory() as cache:
                times["cold cache"].append(whole_process_s(script, cache))
                times["warm cache"].append(whole_process_s(script, cache))
        for case, seconds in times.items():
            spread = f"[{min(seconds):.2f}, {max(seconds):.2f}]"
            print(f"{name:32} {case:10} {statistics.median(seconds):6.2f} {spread}")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import jax"], check=True)
    print(f"{'a process that imports jax only':43} {time.perf_counter() - started:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
