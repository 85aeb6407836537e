"""Diffusion: the method's steps inside a latent diffusion model, without ComfyUI.

Imports ``faces/`` and ``identity/``; the node layer (``nodes/``) hands it ComfyUI's model.

- ``schedules``: sigma schedules and the part of one a denoise strength keeps.
- ``inversion`` (+ ``anderson``, its fixed-point accelerator): exact DDIM inversion (DDIMInvert).
- ``attention``: MGMICA, mask-guided multi-identity cross-attention, one attn2 patch.
- ``placement``: which identity goes to which face, and the patch built for them (MultiIDApply).
- ``ownership``: which attention cell each face owns, at every layer size.
- ``restore_plan`` / ``restore``: DIIR, identity restoration of each face with every other
  pixel kept (IDRestore): the plan per face, then the loop that runs it through a ``Pipeline``.
"""

from .attention import IdentityTokens, MultiIDAttention, sdpa_attention
from .inversion import DEFAULT_REFINE_ITERS, Inversion, euler_step, invert, measured_error, regenerate
from .ownership import owner_map, ownership_masks, ownership_preview
from .placement import multi_id_patch, place_identities
from .restore import Pipeline, Restored, report, restore_faces, side_by_side
from .restore_plan import FaceJob, RestoreSettings, parse_indices, plan_faces
from .schedules import ddim_uniform, partial_sigmas, sd_discrete_sigmas

__all__ = [
    "ddim_uniform", "partial_sigmas", "sd_discrete_sigmas",
    "DEFAULT_REFINE_ITERS", "Inversion", "euler_step", "invert", "measured_error", "regenerate",
    "IdentityTokens", "MultiIDAttention", "sdpa_attention",
    "multi_id_patch", "place_identities",
    "owner_map", "ownership_masks", "ownership_preview",
    "FaceJob", "RestoreSettings", "parse_indices", "plan_faces",
    "Pipeline", "Restored", "report", "restore_faces", "side_by_side",
]
