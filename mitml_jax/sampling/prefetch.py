"""Import what a session needs after sampling while XLA compiles and runs the sampler.

Compiling a sampler block takes seconds of XLA work that does not hold Python's GIL, and running
it leaves the main thread waiting. The modules a typical session imports right after
``pan_impute`` or ``jomo_impute`` (``summary`` needs ``scipy.special``, ``plot`` needs matplotlib,
its PNG writer and ``scipy.fft``, then ``mitml_complete``, ``lmer`` and ``test_estimates``) cost
about a second of imports on a small CPU. :func:`import_during_compile` imports them in a
background thread that starts when XLA starts compiling (JAX's backend-compile monitoring event)
or when the first block has been dispatched, whichever comes first, so it does not compete with
the tracing and lowering the compiler waits for. On the Introduction model XLA spends about a fifth
of its compile CPU time in one thread, then runs two or three (parallel code generation); before
each module the thread waits, for a few seconds at most, until this process leaves part of a
core idle, so on a two-core machine the imports fill the single-threaded phases instead of
slowing the parallel one.

On a fresh install the first ``import matplotlib`` also builds matplotlib's font cache (1.5 s
more here under load); that too happens behind the compilation.

Measured on the shared 2-core machine (load average 4-6 from other jobs, so no idle core; in
process, Introduction vignette, cold XLA cache, 2026-11-26 06:59 UTC, on/off alternating): CPU
seconds are conserved (pan_impute 6.4-6.7 -> 7.5-7.6 s, summary + plot + the rest 1.7-1.8 ->
0.6-0.7 s), so the wall-clock gain needs a core the sampler leaves idle: none under that load,
up to the imports' ~0.9 s on an idle machine.

It never changes results: it only imports modules that later code would import anyway; a
module already imported is skipped, and any exception is swallowed (the later import raises it
again where it belongs). It runs once per process. :meth:`Prefetch.wait` (called before the
sampler returns) lets the rest go at full speed and joins the thread, so the caller's own imports
never run concurrently with it (after an error or Ctrl-C the sampler does not wait: the thread,
a daemon, finishes on its own, and an interrupted run comes back at once). ``MITML_JAX_PREFETCH=0`` turns it off.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time

__all__ = ["MODULES", "ENV", "Prefetch", "import_during_compile", "enabled"]

ENV = "MITML_JAX_PREFETCH"

#: Modules imported in the background, in order (those the Introduction workflow imports
#: lazily after the sampler: summary, plot, complete, lmer, pooling).
MODULES = (
    "mitml_jax.diagnostics.summary",
    "scipy",
    "scipy.special",
    "mitml_jax.results.complete",
    "mitml_jax.results.implist",
    "mitml_jax.analysis.lmer",
    "mitml_jax.analysis.estimates",
    "mitml_jax.diagnostics.plotting",
    "scipy.fft",
    "matplotlib",
    "matplotlib.colors",
    "matplotlib.text",
    "matplotlib.axes",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "PIL.PngImagePlugin",
    # PIL.Image.preinit() imports these at the first savefig
    "PIL.BmpImagePlugin",
    "PIL.GifImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.PpmImagePlugin",
)

#: JAX records this scalar event when a backend compilation (or persistent-cache lookup) starts.
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
#: Longest wait for a compilation or the first dispatched block before importing anyway (s).
_MAX_WAIT = 5.0
#: Each import waits until this process leaves this much of a core idle (measured over
#: ``_SAMPLE`` seconds), at most ``_MAX_THROTTLE`` seconds in all per import.
_IDLE_NEEDED = 0.6
_SAMPLE = 0.025
_MAX_THROTTLE = 3.0

_STATE = {"started": False, "listening": False}
_LOCK = threading.Lock()
#: Set when XLA starts compiling or the caller says go; the import thread waits for it.
_GO = threading.Event()
#: Set by :meth:`Prefetch.wait`: import the rest without waiting for idle cores.
_HURRY = threading.Event()


def enabled() -> bool:
    """False when ``MITML_JAX_PREFETCH`` is ``0``/``false``/``no``/``off``."""
    value = os.environ.get(ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def _on_scalar(event, value, **kwargs):
    if event == _COMPILE_EVENT:
        _GO.set()


def _listen_for_compiles() -> None:
    if _STATE["listening"]:
        return
    try:
        from jax import monitoring

        monitoring.register_scalar_listener(_on_scalar)
    except Exception:  # noqa: BLE001 - a JAX without the hook: the dispatch signal remains
        return
    _STATE["listening"] = True


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _wait_for_idle_core(cores: int) -> None:
    """Sleep while this process's other threads keep every core busy (XLA's parallel codegen), for
    at most ``_MAX_THROTTLE`` seconds in all; :meth:`Prefetch.wait` cuts it short."""
    deadline = time.perf_counter() + _MAX_THROTTLE
    while not _HURRY.is_set() and time.perf_counter() < deadline:
        start_cpu, start = time.process_time(), time.perf_counter()
        if _HURRY.wait(_SAMPLE):
            return
        busy = (time.process_time() - start_cpu) / max(time.perf_counter() - start, 1e-6)
        if busy < cores - _IDLE_NEEDED:
            return


def _import_all(modules) -> None:
    _GO.wait(_MAX_WAIT)
    cores = _cores()
    for name in modules:
        if name in sys.modules:
            continue
        _wait_for_idle_core(cores)
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - never let a warm-up import surface here
            pass


class Prefetch:
    """A background import thread (or nothing, when disabled or already used in this process).

    Call :meth:`go` once the work it may overlap has been dispatched, and :meth:`wait` before
    returning to the caller.
    """

    def __init__(self, modules=None):
        self._thread = None
        todo = [m for m in (MODULES if modules is None else modules) if m not in sys.modules]
        if not todo or not enabled():
            return
        with _LOCK:
            if _STATE["started"]:
                return
            _STATE["started"] = True
        _listen_for_compiles()
        self._thread = threading.Thread(target=_import_all, args=(todo,), name="mitml_jax-prefetch",
                                        daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        """Whether a background thread is running (started and not yet waited for)."""
        return self._thread is not None

    def go(self) -> None:
        """Start importing now (if a compilation has not already started it)."""
        if self._thread is not None:
            _GO.set()

    def wait(self) -> None:
        """Block until the background imports are done."""
        if self._thread is not None:
            _GO.set()
            _HURRY.set()
            self._thread.join()
            self._thread = None


def import_during_compile(modules=None) -> Prefetch:
    """Start the once-per-process background import of ``modules`` (default :data:`MODULES`; see
    the module docstring)."""
    return Prefetch(modules)
