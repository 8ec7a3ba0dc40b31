"""`python -m bench`: see bench.cli. Ctrl-C during the (slow) imports is handled too.

On a CPU the sweeps are split over one host device per core: ``import gdjax``
asks JAX for them (``gdjax.placement``), unless XLA_FLAGS or GDJAX_CPU_DEVICES
says how many.
"""

import os
import sys

from bench import INTERRUPTED


def _entry() -> int:
    try:
        from bench.cli import main
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return main()


def _exit(status: int) -> None:
    """Exit; after Ctrl-C, without tearing the interpreter down.

    An interrupt can stop the harness while XLA's own threads are still
    compiling or running; the normal interpreter shutdown then frees what
    they use under them and crashes (SIGSEGV, seen about one run in four).
    By then the results folder is already back as it was, so leave at once.
    """
    if status == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    _exit(_entry())
