"""Cancel inside one model call (nodes/host/cancel.py), in process with ComfyUI's own model code.

The server-level proof (an IDRestore whose single model call takes minutes, cancelled, the server
idle again within 30 s) is tests/host/test_bad_inputs.py::test_interrupt_stops_a_restore_inside_one_model_call.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
import torch

from tests.host.tiny_models import text_conditioning, tiny_sd15_model


@pytest.fixture(scope="module")
def host(comfy_nodes):
    """The pack's nodes/host package as ComfyUI loaded it."""
    package = comfy_nodes.NODE_CLASS_MAPPINGS["DDIMInvert"].__module__.rsplit(".", 1)[0]
    return sys.modules[package + ".host.cancel"], sys.modules[package + ".host.sampling"]


def _x0(sampling, guider, latent, sigma):
    """x0 from one CFG-guided model call at ``sigma``, through ComfyUI's sampler machinery."""
    sigmas = torch.tensor([sigma, 0.0])
    return sampling.run_in_sampler(guider, latent, sigmas,
                                   lambda denoise, clean, _sigmas: denoise(clean + sigma, _sigmas[:1]))


def test_an_uncancelled_call_is_bit_identical(host):
    import comfy.samplers

    cancel, sampling = host
    model = tiny_sd15_model()
    latent = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    pos, neg = text_conditioning(1), text_conditioning(2)
    plain = comfy.samplers.CFGGuider(model)
    plain.set_conds(pos, neg)
    plain.set_cfg(4.0)
    wrapped = sampling.cfg_guider(model, pos, neg, 4.0)
    assert wrapped.model_patcher.get_wrappers("apply_model", cancel.WRAPPER_KEY), "the guider's model is not wrapped"
    assert torch.equal(_x0(sampling, plain, latent, 3.0), _x0(sampling, wrapped, latent, 3.0))


def test_cancel_stops_a_model_call_while_it_runs(host):
    """A 512 px call of the tiny UNet takes seconds on this CPU; the flag is set half a second after
    the call began. Without the watcher the call returns its result; with it, it raises ComfyUI's
    interrupt."""
    import comfy.model_management as mm

    cancel, sampling = host
    model = tiny_sd15_model()
    latent = torch.randn((1, 4, 64, 64), generator=torch.Generator().manual_seed(0))
    guider = sampling.cfg_guider(model, text_conditioning(1), text_conditioning(2), 4.0)
    outcome = {}

    def run():
        try:
            outcome["result"] = _x0(sampling, guider, latent, 3.0)
        except BaseException as e:      # noqa: BLE001  (what the sampling thread saw)
            outcome["raised"] = e

    mm.interrupt_current_processing(False)
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 120
    while not cancel.WATCHER.armed and thread.is_alive() and time.time() < deadline:
        time.sleep(0.01)        # until the model call has begun (the model is loaded first)
    time.sleep(0.5)
    assert thread.is_alive(), "the call ended before it could be cancelled"
    mm.interrupt_current_processing(True)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert isinstance(outcome.get("raised"), mm.InterruptProcessingException), outcome
    assert not mm.processing_interrupted(), "the interrupt was not consumed"
    assert not cancel.WATCHER.armed


def test_a_set_flag_stops_the_next_call_before_it_starts(host):
    import comfy.model_management as mm

    _, sampling = host
    guider = sampling.cfg_guider(tiny_sd15_model(), text_conditioning(1), text_conditioning(2), 1.0)
    mm.interrupt_current_processing(True)
    with pytest.raises(mm.InterruptProcessingException):
        _x0(sampling, guider, torch.zeros((1, 4, 8, 8)), 1.0)
    assert not mm.processing_interrupted()
