"""`python -m bench`: see bench.cli. Ctrl-C during the (slow) imports is handled too.

On the CPU, XLA shows one device however many cores there are; the harness
asks for one host device per core (unless XLA_FLAGS already says how many),
so that a sweep's runs are split over all cores. Set before JAX starts.
"""

import os
import sys

from bench import INTERRUPTED

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def _entry() -> int:
    if HOST_DEVICES_FLAG not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} {HOST_DEVICES_FLAG}={os.cpu_count()}".strip()
        )
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
