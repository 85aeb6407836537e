"""Cancel inside a model call: ComfyUI's /interrupt acts within a second, even in a call of minutes.

ComfyUI looks at its interrupt flag between sampler steps, so one model call at a large size
(IDRestore at zoom 2048 on a CPU, a large batch on a GPU) ran for minutes after Cancel. Our
sampler programs (DDIMInvert, IDRestore) run the model from ``cancellable(model)``: an
APPLY_MODEL wrapper checks the flag before each call and, while the call runs, a watcher
thread raises ComfyUI's own InterruptProcessingException in the sampling thread as soon as the
flag is set (what ``throw_exception_if_processing_interrupted`` does, from outside). Python
delivers it at the model's next Python line: between layers and between the chunks of
ComfyUI's attention. The wrapper passes every argument through untouched, so a call no one
cancels computes exactly what it computed before, bit for bit.
"""

from __future__ import annotations

import ctypes
import threading

WRAPPER_KEY = "magicid_cancel"
POLL_SECONDS = 0.2


class _Watcher:
    """One daemon thread for the process; it polls the flag only while some model call is armed."""

    def __init__(self):
        self.changed = threading.Condition()
        self.armed: dict[int, int] = {}          # thread id -> how many nested model calls it is in
        self.thread: threading.Thread | None = None

    def arm(self, thread_id: int) -> None:
        with self.changed:
            self.armed[thread_id] = self.armed.get(thread_id, 0) + 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="magicid-cancel", daemon=True)
                self.thread.start()
            self.changed.notify()

    def disarm(self, thread_id: int) -> None:
        with self.changed:       # under the lock: the watcher never raises in a thread that has left
            depth = self.armed.get(thread_id, 0) - 1
            if depth > 0:
                self.armed[thread_id] = depth
            else:
                self.armed.pop(thread_id, None)

    def _run(self) -> None:
        import comfy.model_management as mm

        with self.changed:
            while True:
                self.changed.wait(timeout=None if not self.armed else POLL_SECONDS)
                if self.armed and mm.processing_interrupted():
                    mm.interrupt_current_processing(False)    # consumed, as throw_exception_if_... does
                    for thread_id in self.armed:
                        _raise_in(thread_id, mm.InterruptProcessingException)
                    self.armed.clear()


def _raise_in(thread_id: int, exception: type) -> None:
    """Raise ``exception`` in another thread at its next Python line (CPython's PyThreadState_SetAsyncExc)."""
    hit = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exception))
    if hit > 1:     # never expected: undo rather than interrupt threads that are not ours
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


WATCHER = _Watcher()


def _cancel_inside(executor, *args, **kwargs):
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()
    thread_id = threading.get_ident()
    WATCHER.arm(thread_id)
    try:
        return executor(*args, **kwargs)
    finally:
        WATCHER.disarm(thread_id)


def cancellable(model):
    """A clone of ``model`` whose every model call stops within a second of Cancel."""
    import comfy.patcher_extension

    model = model.clone()
    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, _cancel_inside)
    return model
