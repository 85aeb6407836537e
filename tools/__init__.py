"""Generators that rewrite shipped files from the pack: workflows/ (and their previews), the README's
model table, docs/nodes.md's node table, and the ComfyUI core snapshot the workflow tests read. Left out of the registry archive
(.comfyignore)."""
