"""`python -m bench`: see bench.cli. Ctrl-C during the (slow) imports is handled too."""

import sys

from bench import INTERRUPTED


def _entry() -> int:
    try:
        from bench.cli import main
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(_entry())
