"""A stock ComfyUI ControlNet whose residuals act only inside a mask.

ComfyUI's ControlNet adds its residuals to the UNet's skip connections everywhere.
To keep the landmark control on the faces and the skeleton control on the people,
:class:`MaskedControlNet` wraps a ready ControlNet (hint, strength and percent range
set the stock way) and multiplies each of its residuals by the mask, resized to that
residual's grid:  r_l <- r_l * resize(mask, h_l, w_l).  Masking the hint image would
not do it: a ControlNet answers a black hint with residuals of its own.

Used by MMFControlApply (MMF's two masked controls) and by IDRestore's ComfyPipeline (the
landmark control, unmasked). Only imported from inside functions (it needs ``comfy`` at
import). Words: docs/ARCHITECTURE.md (glossary).
"""

from __future__ import annotations

import torch

import comfy.controlnet
import comfy.utils


class MaskedControlNet(comfy.controlnet.ControlBase):
    """``inner``'s control, restricted to ``mask`` (B or 1, H, W), chained like any ControlNet."""

    def __init__(self, inner: comfy.controlnet.ControlBase, mask: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.mask = mask
        self.extra_hooks = inner.extra_hooks   # ComfyUI collects hooks along previous_controlnet

    def _mask_like(self, residual: torch.Tensor, batched_number: int) -> torch.Tensor:
        # Same centre crop as the hint gets; "area" averages the mask over each residual cell.
        h, w = residual.shape[-2:]
        m = comfy.utils.common_upscale(self.mask[:, None].float(), w, h, "area", "center")
        m = comfy.controlnet.broadcast_image_to(m, residual.shape[0], batched_number)
        return m.to(device=residual.device, dtype=residual.dtype)

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        prev = None
        if self.previous_controlnet is not None:
            prev = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        own = self.inner.get_control(x_noisy, t, cond, batched_number, transformer_options)
        if own is None:                      # outside its start/end percent
            return prev
        masked = {key: [None if r is None else r * self._mask_like(r, batched_number) for r in residuals]
                  for key, residuals in own.items()}
        return self.control_merge(masked, prev, output_dtype=None)   # own strength stays 1: only adds prev

    def pre_run(self, model, percent_to_timestep_function):
        super().pre_run(model, percent_to_timestep_function)
        self.inner.pre_run(model, percent_to_timestep_function)

    def cleanup(self):
        self.inner.cleanup()
        super().cleanup()

    def get_models(self):
        return super().get_models() + self.inner.get_models()

    def inference_memory_requirements(self, dtype):
        return super().inference_memory_requirements(dtype) + self.inner.inference_memory_requirements(dtype)

    def copy(self):
        c = MaskedControlNet(self.inner.copy(), self.mask)
        self.copy_to(c)
        return c


def apply_control(positive, negative, control_net, image, strength, percent_range, mask=None, vae=None):
    """ControlNetApplyAdvanced's chaining (one new control per previous control, shared by
    positive and negative), with the new control restricted to ``mask`` when one is given."""
    hint = image.movedim(-1, 1)
    made = {}
    out = []
    for conditioning in (positive, negative):
        if conditioning is None:      # no negative (Flux at cfg 1)
            out.append(None)
            continue
        entries = []
        for tokens, options in conditioning:
            options = options.copy()
            prev = options.get("control", None)
            if prev not in made:
                control = control_net.copy().set_cond_hint(hint, strength, percent_range, vae=vae)
                if mask is not None:
                    control = MaskedControlNet(control, mask)
                made[prev] = control.set_previous_controlnet(prev)
            options["control"] = made[prev]
            options["control_apply_to_uncond"] = False
            entries.append([tokens, options])
        out.append(entries)
    return out[0], out[1]
