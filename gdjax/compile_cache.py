"""JAX's persistent compilation cache for gdjax's programs: opt-in here, on by default in `python -m bench`.

JAX keeps only compiles of at least one second by default
(``jax_persistent_cache_min_compile_time_secs``); a gdjax sweep compiles in
0.05 to 0.5 s, so none would be kept. :func:`use_compile_cache` lowers that
threshold to 0 for this process and points the cache at a folder; a second
process then loads each program instead of compiling it. Tracing and
lowering are never cached. Nothing here runs on import: a library user's
JAX settings change only when they call it.
"""

from __future__ import annotations

import os
from pathlib import Path

_served = {"hits": 0, "misses": 0}
_EVENTS = {"/jax/compilation_cache/cache_hits": "hits", "/jax/compilation_cache/cache_misses": "misses"}
_listening = []
_in_use: list[Path] = []


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/gdjax/jax``, by default ``~/.cache/gdjax/jax``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gdjax" / "jax"


def use_compile_cache(folder: str | Path | None = None) -> Path:
    """Store and load this process's compiled programs in ``folder``; return the folder used.

    For every JAX program of this process from now on, not only gdjax's:
    the cache's minimum compile time is lowered to 0, so that every compile
    is stored. The fast path's self-test verdict is remembered there too.

    Default: ``jax_compilation_cache_dir`` if the user set it (e.g. by the
    ``JAX_COMPILATION_CACHE_DIR`` environment variable), else
    ``$XDG_CACHE_HOME/gdjax/jax`` (``~/.cache/gdjax/jax``). The folder grows
    with every new program (40 MB after a few default runs of the harness):
    delete it at will, or bound it with JAX's ``jax_compilation_cache_max_size``
    (which needs the ``filelock`` package; without it JAX reads no entry).
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    chosen = Path(folder or jax.config.jax_compilation_cache_dir or default_folder()).expanduser()
    chosen.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(chosen))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()  # a process that compiled before: use the folder from now on
    _in_use[:] = [chosen]
    if not _listening:
        jax.monitoring.register_event_listener(_count)
        _listening.append(True)
    return chosen


def folder_in_use() -> Path | None:
    """The folder :func:`use_compile_cache` chose in this process; None if it was not called."""
    return _in_use[0] if _in_use else None


def compile_cache_served() -> dict[str, int]:
    """Compiles loaded from the persistent cache (hits) and compiled then stored (misses) so far."""
    return dict(_served)


def _count(event: str, **kwargs) -> None:
    if event in _EVENTS:
        _served[_EVENTS[event]] += 1
