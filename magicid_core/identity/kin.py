"""Kin blend: a child's identity from two parents' identity embeddings.

After DNA-Net (arXiv 1911.07014), which builds a child's face by picking "genes"
from each parent at random: here the genes are the dimensions of the identity
embedding. A seeded draw picks ``round(r * D)`` dimensions from parent A and the
rest from parent B, and the result is brought back to the parents' norm:

    child = normalise(m * a + (1 - m) * b),   m in {0, 1}^D,  sum(m) = round(r * D)

For unit embeddings with cos(a, b) = c this gives, in expectation,
cos(child, a) ~ r + (1 - r) c and cos(child, b) ~ (1 - r) + r c: the resemblance
ratio r moves the child from B (r = 0) to A (r = 1). The child is an ordinary
:class:`Identity` and goes to MultiIDApply like any reference identity.
"""

from __future__ import annotations

import numpy as np

from ..faces.records import Identity

AGES = ("", "baby", "toddler", "child", "teenager", "young adult", "adult")
GENDERS = ("", "female", "male")

# (age, gender) -> the words for the prompt; "" means "not said".
_HINT_WORDS = {
    "baby": ("baby", "baby girl", "baby boy"),
    "toddler": ("toddler", "toddler girl", "toddler boy"),
    "child": ("child", "little girl", "little boy"),
    "teenager": ("teenager", "teenage girl", "teenage boy"),
    "young adult": ("young adult", "young woman", "young man"),
    "adult": ("adult", "woman", "man"),
    "": ("", "girl", "boy"),
}


def kin_hint(age: str = "", gender: str = "") -> str:
    """Prompt words for the child, e.g. ("child", "female") -> "a little girl"; "" when nothing is said."""
    if age not in AGES:
        raise ValueError(f"age must be one of {AGES}, got {age!r}")
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    words = _HINT_WORDS[age][GENDERS.index(gender)]
    if not words:
        return ""
    return ("an " if words[0] in "aeiou" else "a ") + words


def _checked_pair(a: Identity, b: Identity) -> tuple[np.ndarray, np.ndarray]:
    if a.embedding_model != b.embedding_model:
        raise ValueError(
            f"the parents come from different identity models ({a.embedding_model!r} vs {b.embedding_model!r}): "
            "build both parent identities with the same identity model")
    ea = np.asarray(a.embedding, np.float64).ravel()
    eb = np.asarray(b.embedding, np.float64).ravel()
    if ea.shape != eb.shape:
        raise ValueError(f"the parents' embeddings differ in length ({ea.size} vs {eb.size})")
    for who, e in ((a, ea), (b, eb)):
        if e.size == 0 or not np.isfinite(e).all() or not np.linalg.norm(e) > 0:
            raise ValueError(f"parent {who.name!r} has an empty, zero or non-finite embedding")
    return ea, eb


def gene_mask(size: int, resemblance: float, seed: int) -> np.ndarray:
    """(size,) bool: True where the child takes parent A's value; exactly round(r * size) Trues."""
    if not 0.0 <= resemblance <= 1.0:
        raise ValueError(f"resemblance must be in 0..1 (1 = all from the first parent), got {resemblance}")
    from_a = np.zeros(size, bool)
    from_a[np.random.default_rng(seed).permutation(size)[: int(round(resemblance * size))]] = True
    return from_a


def blend_child(parent_a: Identity, parent_b: Identity, resemblance: float = 0.5, seed: int = 0,
                hint: str = "", name: str | None = None) -> Identity:
    """The child identity of two parents (see the module docstring).

    Identical parents give that same identity back (a documented no-op): there is
    nothing to choose between.
    """
    ea, eb = _checked_pair(parent_a, parent_b)
    from_a = gene_mask(ea.size, resemblance, seed)
    child = np.where(from_a, ea, eb)
    norm = np.linalg.norm(child)
    if not norm > 0:   # only possible when every chosen gene is 0 in its parent
        raise ValueError("the chosen genes are all zero: try another seed or resemblance")
    target = (np.linalg.norm(ea) + np.linalg.norm(eb)) / 2   # 1 for L2-normalised embeddings
    return Identity(
        name=name or f"child of {parent_a.name} and {parent_b.name}",
        embedding=(child * (target / norm)).astype(np.float32),
        embedding_model=parent_a.embedding_model,
        reference_count=parent_a.reference_count + parent_b.reference_count,
        hint=hint,
    )



def family(parents_a: list[Identity], parents_b: list[Identity] | None = None, resemblance: float = 0.5,
           seed: int = 0, age: str = "", gender: str = "", include_parents: bool = True) -> tuple[list[Identity], str]:
    """Parents + child as an IDENTITIES list, and the child's prompt hint.

    The parents are the first identity of each list, or the first two of ``parents_a``
    when ``parents_b`` is not given.
    """
    if parents_b:
        if not parents_a:
            raise ValueError("the first parent's IDENTITIES is empty")
        a, b = parents_a[0], parents_b[0]
    elif parents_a is not None and len(parents_a) >= 2:
        a, b = parents_a[0], parents_a[1]
    else:
        raise ValueError("KinIDBlend needs two parents: connect parent_b, or give parent_a two identities")
    hint = kin_hint(age, gender)
    child = blend_child(a, b, resemblance, seed, hint=hint)
    return ([a, b, child] if include_parents else [child]), hint
