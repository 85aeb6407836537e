"""ComfyUI's progress bar and Cancel, as the core's one progress shape (magicid_core/progress.py)."""

from __future__ import annotations


def comfy_progress(total: int = 1):
    """A core ``progress(done, total)`` (magicid_core/progress.py) that moves ComfyUI's progress
    bar and stops the work, by ComfyUI's own interrupt exception, when the user presses Cancel.
    The core calls it between model calls, so a cancel takes effect within one call."""
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)
    shown = []

    def progress(done: int, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        if shown != [done, total]:          # the bar only when the count moves
            shown[:] = [done, total]
            bar.update_absolute(done, total)

    return progress
