"""The pack loads through ComfyUI's own custom-node loader and its server starts with it."""


def test_pack_registers_through_comfy_loader(comfy_nodes):
    from nodes import NODE_CLASS_MAPPINGS  # noqa: F401  (ComfyUI's nodes module, via the fixture)

    import sys
    pack = sys.modules["ComfyUI-MagicID"]
    assert pack.WEB_DIRECTORY == "./web"
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert comfy_nodes.NODE_CLASS_MAPPINGS[name] is cls


def test_server_starts_with_the_pack(comfy_server):
    info = comfy_server.get("/object_info")
    assert "KSampler" in info
    assert "IMPORT FAILED" not in comfy_server.log().split("Import times for custom nodes")[-1]
