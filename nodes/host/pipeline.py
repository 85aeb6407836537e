"""ComfyUI's MODEL / VAE / CONDITIONING as the ``Pipeline`` IDRestore's core (DIIR) runs on.

Each denoising stage runs inside ComfyUI's own sampler (sampling.run_in_sampler), so model
loading, CFG, ControlNet, model patches and the latent format are ComfyUI's. Stage "invert"
runs on the model without MultiIDApply's identities, no control and no CFG; stage
"regenerate" with the identities cut to the face's crop (attn2.cropped_identities) and the
face's landmark map on the ControlNet. Words: docs/ARCHITECTURE.md (glossary).

The identity geometry here (which face an identity covers, FACES pixels -> picture pixels)
is small numpy on the masks MultiIDApply keeps; it stays beside the patch protocol it reads.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch

from ...magicid_core.diffusion.attention import same_aspect
from ...magicid_core.diffusion.restore import Pipeline
from ...magicid_core.diffusion.restore_plan import landmark_hint
from .attn2 import cropped_identities, identity_attentions, without_identities
from .cancel import cancel_inside
from .dit import FLUX, model_family
from .dit_restore import cropped_flux_people, flux_people, without_flux_people
from .sampling import cfg_guider, model_precision, run_in_sampler, schedule_sigmas

log = logging.getLogger(__name__)

FLUX_PATCH = 2                  # Flux's tokens are 2 x 2 latent patches: crops padded to 16 px


class ComfyPipeline(Pipeline):
    def __init__(self, model, vae, positive, negative, cfg: float, scheduler: str,
                 control_net=None, control_strength: float = 0.0, only_identified: bool = False):
        self.only_identified = only_identified and has_identity_patch(model)
        self.model, self.vae = model, vae
        self.positive, self.negative, self.cfg, self.scheduler = positive, negative, cfg, scheduler
        self.control_net, self.control_strength = control_net, control_strength
        self.latent_scale = vae.spacial_compression_encode()
        self.precision = model_precision(model)
        # crops padded to whole tokens of the model (Flux pads a ragged edge with tokens of zeros)
        self.size_multiple = self.latent_scale * (FLUX_PATCH if model_family(model) == FLUX else 1)

    def encode(self, pixels):
        with cancel_inside("a VAE encode"):         # a zoomed crop takes minutes to encode on a CPU
            return self.vae.encode(pixels)

    def decode(self, latent):
        with cancel_inside("a VAE decode"):
            return self.vae.decode(latent)[..., :3]

    def sigmas(self, steps):
        return schedule_sigmas(self.model, self.scheduler, steps)

    def run(self, stage, latent, sigmas, program, jobs):
        # one line per stage: in the console a long zoomed restore shows where it is
        log.info("MagicID IDRestore: %s, %d face(s), latent %s", stage, len(jobs),
                 "x".join(str(n) for n in latent.shape))
        if stage == "invert":      # the plain model follows the crop back to noise: no identity, control or CFG
            guider = cfg_guider(without_people(self.model), self.positive, self.negative, 1.0)
        else:
            guider = cfg_guider(identity_model(self.model, jobs), *self._controlled(jobs), self.cfg)
        return run_in_sampler(guider, latent, sigmas, lambda denoise, clean, _sigmas: program(denoise, clean))

    def batch_limit(self, latent_hw):
        if has_identity_patch(self.model):
            return 1                # each face has its own cropped identity patch
        import comfy.model_management

        channels = self.model.model.latent_format.latent_channels
        one_face = self.model.model.memory_required([2, channels, *latent_hw])     # cond + uncond
        free = comfy.model_management.get_free_memory(self.model.load_device)
        return max(1, int(0.5 * free // max(one_face, 1)))

    def skip_reason(self, job):
        if self.only_identified and not has_identity(self.model, job.full_mask()):
            return ("no identity of MultiIDApply matched this face (name it in faces_to_restore to restore "
                    "it anyway)")
        return None

    def _controlled(self, jobs):
        """positive, negative with the faces' landmark maps on the ControlNet (if one is given):
        stock ControlNetApplyAdvanced chaining, one control shared by positive and negative."""
        if self.control_net is None or self.control_strength == 0:
            return self.positive, self.negative
        from .masked_controlnet import apply_control

        return apply_control(self.positive, self.negative, self.control_net, landmark_hints(jobs),
                             self.control_strength, (0.0, 1.0), vae=self.vae)


def people(model) -> list:
    """MultiIDApply's identities and person words on ``model`` (each with ``masks`` on the FACES image):
    attn2 entries on SD, dit entries and the words wrapper on Flux."""
    return flux_people(model) if model_family(model) == FLUX else identity_attentions(model)


def without_people(model):
    """The model without MultiIDApply's identities and words (every other patch kept): inversion's."""
    return without_flux_people(model) if model_family(model) == FLUX else without_identities(model)


def has_identity_patch(model) -> bool:
    """Whether MultiIDApply patched this model: then each face needs its own cropped patch
    and faces go through one at a time."""
    return bool(people(model))


def has_identity(model, face_mask: np.ndarray) -> bool:
    """Whether an identity's mask of MultiIDApply's patch overlaps this face's mask."""
    for attention in people(model):
        masks = np.asarray(attention.masks)
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
    if not same_aspect((ih, iw), (mh, mw)):
        raise ValueError(f"MultiIDApply placed its identities on a {mw}x{mh} picture but IDRestore's IMAGE is "
                         f"{iw}x{ih}: give MultiIDApply the FACES of this picture (or of one of its aspect)")
    return mw / iw, mh / ih


def identity_model(model, jobs):
    """The model with MultiIDApply's identity masks cut to this face's crop and zoomed to
    its working size (faces of a patched model go one at a time). The right/bottom
    padding to a multiple of 8 (under 8 px) stretches the masks by that much."""
    attentions = people(model)
    if not attentions:
        return model
    (job,) = jobs
    masks = np.asarray(attentions[0].masks)
    sx, sy = _patch_scale(masks, job.image_hw) if len(masks) else (1.0, 1.0)
    x0, y0, x1, y1 = job.plan.box
    crop = cropped_flux_people if model_family(model) == FLUX else cropped_identities
    return crop(model, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), job.plan.padded)


def landmark_hints(jobs) -> torch.Tensor:
    """(B, h, w, 3) landmark control maps of the faces at working size."""
    return torch.from_numpy(np.stack([landmark_hint(job) for job in jobs]))
