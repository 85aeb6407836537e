"""An identity from IPAdapter_plus' EMBEDS, through the real IPAdapter_plus in a real ComfyUI.

Needs MAGICID_PEERS_DIR with a ComfyUI_IPAdapter_plus checkout (skipped otherwise). A face
embedding saved as IPAdapter_plus saves EMBEDS (an .ipadpt file, torch.save) is loaded by
its own IPAdapterLoadEmbeds / combined by IPAdapterCombineEmbeds and turned into
IDENTITIES by IdentityFromEmbedding: the identity is the one IdentityFromImages builds.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.people import astronaut, grace_hopper

PEERS = os.environ.get("MAGICID_PEERS_DIR", "")
IPADAPTER_DIR = Path(PEERS) / "ComfyUI_IPAdapter_plus"
pytestmark = pytest.mark.skipif(
    not (PEERS and (IPADAPTER_DIR / "__init__.py").is_file()),
    reason="MAGICID_PEERS_DIR is not set to a folder holding ComfyUI_IPAdapter_plus")


@pytest.fixture(scope="module")
def mappings(comfy_nodes):
    loaded = asyncio.run(comfy_nodes.load_custom_node(str(IPADAPTER_DIR)))
    assert loaded, "ComfyUI could not load IPAdapter_plus (see the log above)"
    return comfy_nodes.NODE_CLASS_MAPPINGS


def call(mappings, node_type, **inputs):
    cls = mappings[node_type]
    out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out   # a node with a UI part returns both


def _image(array):
    return torch.from_numpy(array.astype(np.float32) / 255.0)[None]


def test_saved_embeds_become_the_same_identity(mappings, comfy_base_dir):
    (built,) = call(mappings, "IdentityFromImages", images=_image(astronaut()), name="Eileen", backend="dlib")
    torch.save(torch.from_numpy(built[0].embedding)[None], comfy_base_dir / "input" / "eileen.ipadpt")
    (embeds,) = call(mappings, "IPAdapterLoadEmbeds", embeds="eileen.ipadpt")
    (ids,) = call(mappings, "IdentityFromEmbedding", embedding=embeds, embedding_model="dlib_resnet_v1",
                  name="Eileen")
    assert np.array_equal(ids[0].embedding, built[0].embedding)
    assert ids[0].embedding_model == built[0].embedding_model


def test_combined_embeds_append_to_a_chain(mappings):
    (eileen,) = call(mappings, "IdentityFromImages", images=_image(astronaut()), name="Eileen", backend="dlib")
    (grace,) = call(mappings, "IdentityFromImages", images=_image(grace_hopper()[:512]), name="Grace",
                    backend="dlib")
    one, two = (torch.from_numpy(i[0].embedding)[None] for i in (eileen, grace))
    (both,) = call(mappings, "IPAdapterCombineEmbeds", embed1=one, embed2=two, method="concat")
    (ids,) = call(mappings, "IdentityFromEmbedding", embedding=both, embedding_model="dlib_resnet_v1",
                  name="mix", identities=eileen)
    assert [i.name for i in ids] == ["Eileen", "mix"] and ids[1].reference_count == 2
    mean = (eileen[0].embedding + grace[0].embedding) / 2
    np.testing.assert_allclose(ids[1].embedding, mean / np.linalg.norm(mean), atol=1e-6)
    with pytest.raises(ValueError, match="already in the list"):
        call(mappings, "IdentityFromEmbedding", embedding=one, embedding_model="dlib_resnet_v1", name="Eileen",
             identities=eileen)
    with pytest.raises(ValueError, match="same model"):
        call(mappings, "IdentityFromEmbedding", embedding=torch.ones(1, 512), embedding_model="arcface:antelopev2",
             name="Zed", identities=eileen)
