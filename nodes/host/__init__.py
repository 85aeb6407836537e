"""The ComfyUI adapter layer: the only code of the pack that knows ComfyUI's internals.

Node classes (one level up) declare inputs and call magicid_core; whatever they need from
ComfyUI beyond its public node API (progress bars, sampler lists) comes from here. Nothing is
imported at package import: each module imports ``comfy`` inside its functions, except
masked_controlnet, which node code imports only when it runs.
"""
