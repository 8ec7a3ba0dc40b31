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


if __name__ == "__main__":
    sys.exit(_entry())
