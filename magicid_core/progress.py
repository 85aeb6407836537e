"""One progress shape for every long loop of the core: ``progress(done, total)``.

Loops call it after each unit of work (a step, a face-step, a tile) and, where one unit
holds several model calls, between those calls with ``done`` unchanged. A caller moves a
progress bar with it, and stops the loop by raising from it: ComfyUI's node layer passes a
function that raises when the user pressed Cancel, so a cancel takes effect within one call.
"""

from __future__ import annotations

from typing import Callable

Progress = Callable[[int, int], None]   # progress(done, total); may raise to stop the work
