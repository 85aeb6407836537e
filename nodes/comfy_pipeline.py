"""ComfyUI's MODEL / VAE / CONDITIONING as a ``magicid_core.restore.Pipeline``.

Each denoising stage runs inside ComfyUI's own sampler (a ``KSAMPLER`` under a
``CFGGuider``), so model loading, CFG, ControlNet, model patches and the latent
format are ComfyUI's; the core's program only sees ``denoise(x, sigma) -> x0``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..magicid_core.diffusion.restore import Pipeline
from ..magicid_core.diffusion.restore_plan import landmark_hint
from .multi_id_apply import crop_multi_id_patches, multi_id_patches, without_multi_id_patches


def run_in_sampler(guider, latent: torch.Tensor, sigmas: torch.Tensor, program) -> torch.Tensor:
    """``program(denoise, clean_latent)`` inside ``guider``'s sampling, in the model's latent space.

    ``denoise(x, sigma)`` is ComfyUI's CFG-guided x0 prediction; the program's result
    leaves through the model's ``process_latent_out`` like any sampler's.
    """
    import comfy.samplers

    def sampler(model, x, sigmas, extra_args, callback, disable):
        def denoise(x, sigma, **_):
            return model(x, sigma, **extra_args)
        return program(denoise, model.latent_image)   # the encoded crop, as the model sees it

    return guider.sample(torch.zeros_like(latent), latent, comfy.samplers.KSAMPLER(sampler), sigmas,
                         disable_pbar=True, seed=0)


class ComfyPipeline(Pipeline):
    def __init__(self, model, vae, positive, negative, cfg: float, scheduler: str,
                 control_net=None, control_strength: float = 0.0, only_identified: bool = False):
        self.only_identified = only_identified and has_identity_patch(model)
        self.model, self.vae = model, vae
        self.positive, self.negative, self.cfg, self.scheduler = positive, negative, cfg, scheduler
        self.control_net, self.control_strength = control_net, control_strength
        self.latent_scale = vae.spacial_compression_encode()

    def encode(self, pixels):
        return self.vae.encode(pixels)

    def decode(self, latent):
        return self.vae.decode(latent)[..., :3]

    def sigmas(self, steps):
        import comfy.samplers

        return comfy.samplers.calculate_sigmas(self.model.get_model_object("model_sampling"),
                                               self.scheduler, steps).cpu()

    def run(self, stage, latent, sigmas, program, jobs):
        import comfy.samplers

        if stage == "invert":      # the plain model follows the crop back to noise: no identity, control or CFG
            guider = comfy.samplers.CFGGuider(without_multi_id_patches(self.model))
            guider.set_conds(self.positive, self.negative)
            guider.set_cfg(1.0)
        else:
            guider = comfy.samplers.CFGGuider(identity_model(self.model, jobs))
            guider.set_conds(*self._controlled(jobs))
            guider.set_cfg(self.cfg)
        return run_in_sampler(guider, latent, sigmas, program)

    def batch_limit(self, latent_hw):
        if has_identity_patch(self.model):
            return 1                # each face has its own cropped identity patch
        import comfy.model_management

        channels = self.model.model.latent_format.latent_channels
        one_face = self.model.model.memory_required([2, channels, *latent_hw])     # cond + uncond
        free = comfy.model_management.get_free_memory(self.model.load_device)
        return max(1, int(0.5 * free // max(one_face, 1)))

    def skip_reason(self, job):
        if self.only_identified and not has_identity(self.model, job.mask):
            return "no identity of MultiIDApply matched this face (name it in face_indices to restore it anyway)"
        return None

    def _controlled(self, jobs):
        """positive, negative with the faces' landmark maps on the ControlNet (if one is given)."""
        if self.control_net is None or self.control_strength == 0:
            return self.positive, self.negative
        hint = landmark_hints(jobs).movedim(-1, 1)
        c_net = self.control_net.copy().set_cond_hint(hint, self.control_strength, (0.0, 1.0), vae=self.vae)
        return [_with_control(c, c_net) for c in (self.positive, self.negative)]


def _with_control(conditioning, c_net):
    out = []
    for tokens, options in conditioning:
        options = options.copy()
        c = c_net.copy()
        c.set_previous_controlnet(options.get("control"))
        options["control"] = c
        options["control_apply_to_uncond"] = False
        out.append([tokens, options])
    return out


def has_identity_patch(model) -> bool:
    """Whether MultiIDApply patched this model: then each face needs its own cropped patch
    and faces go through one at a time."""
    return bool(multi_id_patches(model))


def has_identity(model, face_mask: np.ndarray) -> bool:
    """Whether an identity's mask of MultiIDApply's patch overlaps this face's mask."""
    for patch in multi_id_patches(model).values():
        masks = np.asarray(patch.masks)
        if len(masks) == 0:
            continue
        _patch_scale(masks, face_mask.shape)        # refuses a picture of another aspect
        resized = cv2.resize(face_mask, masks.shape[:0:-1], interpolation=cv2.INTER_AREA)
        if (masks * resized[None] > 0).any():
            return True
    return False


def _patch_scale(masks: np.ndarray, image_hw) -> tuple[float, float]:
    """Patch-mask pixels per image pixel; the IMAGE may be a multiple of MultiIDApply's FACES size."""
    (mh, mw), (ih, iw) = masks.shape[1:], image_hw
    if abs(mh * iw - mw * ih) > 0.02 * mh * iw:
        raise ValueError(f"MultiIDApply placed its identities on a {mw}x{mh} picture but IDRestore's IMAGE is "
                         f"{iw}x{ih}: give MultiIDApply the FACES of this picture (or of one of its aspect)")
    return mw / iw, mh / ih


def identity_model(model, jobs):
    """The model with MultiIDApply's identity masks cut to this face's crop and zoomed to
    its working size (faces of a patched model go one at a time). The right/bottom
    padding to a multiple of 8 (under 8 px) stretches the masks by that much."""
    patches = multi_id_patches(model)
    if not patches:
        return model
    (job,) = jobs
    masks = np.asarray(next(iter(patches.values())).masks)
    sx, sy = _patch_scale(masks, job.mask.shape) if len(masks) else (1.0, 1.0)
    x0, y0, x1, y1 = job.plan.box
    return crop_multi_id_patches(model, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), job.plan.padded)


def landmark_hints(jobs) -> torch.Tensor:
    """(B, h, w, 3) landmark control maps of the faces at working size."""
    return torch.from_numpy(np.stack([landmark_hint(job) for job in jobs]))
