"""KinIDBlend: two parent identities -> parents + child, ready for MultiIDApply."""

from __future__ import annotations

from ..magicid_core.identity.kin import AGES, GENDERS, family

from .common import CATEGORY, IDENTITIES


class KinIDBlend:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "parent_a": (IDENTITIES, {"tooltip": "The first parent (its first identity; or both parents, "
                                                     "when parent_b is not connected)."}),
                "resemblance": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                                          "tooltip": "Share of the child's identity taken from parent A "
                                                     "(1 = parent A, 0 = parent B)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "Which genes come from which parent: another seed, another child."}),
                "age": (list(AGES), {"tooltip": "Optional age for the prompt hint."}),
                "gender": (list(GENDERS), {"tooltip": "Optional gender for the prompt hint."}),
                "include_parents": ("BOOLEAN", {"default": True, "tooltip":
                                                "Output parents + child (a family photo) or the child alone."}),
            },
            "optional": {
                "parent_b": (IDENTITIES, {"tooltip": "The second parent (its first identity)."}),
            },
        }

    RETURN_TYPES = (IDENTITIES, "STRING")
    RETURN_NAMES = ("identities", "child_hint")
    OUTPUT_TOOLTIPS = ("Parents then child (or the child alone), for MultiIDApply.",
                       "Words for the child in the prompt, e.g. 'a little girl' (empty when no age/gender is set).")
    FUNCTION = "blend"
    CATEGORY = CATEGORY + "/identity"

    def blend(self, parent_a, resemblance, seed, age, gender, include_parents, parent_b=None):
        return family(parent_a, parent_b, resemblance, seed, age, gender, include_parents)
