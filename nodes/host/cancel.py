"""Cancel inside a model call: ComfyUI's /interrupt acts within a second, even in a call of minutes.

ComfyUI looks at its interrupt flag between sampler steps, so one model call at a large size
(IDRestore at zoom 2048 on a CPU, a large batch on a GPU) ran for minutes after Cancel. Our
sampler programs (DDIMInvert, IDRestore) run the model from ``cancellable(model)``, and the MODEL
MultiIDApply gives (so a stock KSampler on it too) carries the same wrapper: an
APPLY_MODEL wrapper checks the flag before each call and, while the call runs, a watcher
thread raises ComfyUI's own InterruptProcessingException in the sampling thread as soon as the
flag is set (what ``throw_exception_if_processing_interrupted`` does, from outside). Python
delivers it at the model's next Python line: between layers and between the chunks of
ComfyUI's attention. The wrapper passes every argument through untouched, so a call no one
cancels computes exactly what it computed before, bit for bit. IDRestore's VAE encode and decode
of a zoomed crop (minutes at 2048 on a CPU) run inside ``cancel_inside()`` the same way.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)

WRAPPER_KEY = "magicid_cancel"
POLL_SECONDS = 0.2


class _Watcher:
    """One daemon thread for the process; it polls the flag only while some call is armed."""

    def __init__(self):
        self.changed = threading.Condition()
        self.armed: dict[int, list[str]] = {}     # thread id -> what it is running (nested calls: a stack)
        self.thread: threading.Thread | None = None

    def arm(self, thread_id: int, what: str) -> None:
        with self.changed:
            self.armed.setdefault(thread_id, []).append(what)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="magicid-cancel", daemon=True)
                self.thread.start()
            self.changed.notify()

    def disarm(self, thread_id: int) -> None:
        with self.changed:       # under the lock: the watcher never raises in a thread that has left
            running = self.armed.get(thread_id, [])
            if running:
                running.pop()
            if not running:
                self.armed.pop(thread_id, None)

    def _run(self) -> None:
        import comfy.model_management as mm

        with self.changed:
            while True:
                self.changed.wait(timeout=None if not self.armed else POLL_SECONDS)
                if self.armed and mm.processing_interrupted():
                    mm.interrupt_current_processing(False)    # consumed, as throw_exception_if_... does
                    for thread_id, running in self.armed.items():
                        log.info("MagicID: Cancel stops %s", running[-1])
                        _raise_in(thread_id, mm.InterruptProcessingException)
                    self.armed.clear()


def _raise_in(thread_id: int, exception: type) -> None:
    """Raise ``exception`` in another thread at its next Python line (CPython's PyThreadState_SetAsyncExc)."""
    hit = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exception))
    if hit > 1:     # never expected: undo rather than interrupt threads that are not ours
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


WATCHER = _Watcher()


@contextmanager
def cancel_inside(what: str):
    """Cancel acts inside this block (``what`` runs in it, for the log) within POLL_SECONDS, and at
    once when it was set before."""
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()
    thread_id = threading.get_ident()
    WATCHER.arm(thread_id, what)
    try:
        yield
    finally:
        WATCHER.disarm(thread_id)


def _cancel_inside(executor, *args, **kwargs):
    with cancel_inside("a model call"):
        return executor(*args, **kwargs)


def add_cancel_wrapper(model) -> None:
    """Make every model call of ``model`` (a ModelPatcher of ours, e.g. a fresh clone) stop within
    POLL_SECONDS of Cancel; adding it twice keeps one."""
    import comfy.patcher_extension

    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, _cancel_inside)


def cancellable(model):
    """A clone of ``model`` whose every model call stops within a second of Cancel."""
    model = model.clone()
    add_cancel_wrapper(model)
    return model
