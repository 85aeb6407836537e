"""The pack loads through ComfyUI's own custom-node loader and its server starts with it."""

import sys


def test_pack_registers_through_comfy_loader(comfy_nodes, comfy_base_dir):
    # ComfyUI names a custom-node module after its full path (dots escaped).
    pack = sys.modules[str(comfy_base_dir / "custom_nodes" / "ComfyUI-MagicID").replace(".", "_x_")]
    assert pack.WEB_DIRECTORY == "./web"
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert comfy_nodes.NODE_CLASS_MAPPINGS[name] is cls


def test_server_starts_with_the_pack(comfy_server):
    info = comfy_server.get("/object_info")
    assert "KSampler" in info
    pack_lines = [line for line in comfy_server.log().splitlines() if "ComfyUI-MagicID" in line]
    assert pack_lines, "the server log does not mention the pack at all"
    assert not any("IMPORT FAILED" in line for line in pack_lines), "\n".join(pack_lines)
