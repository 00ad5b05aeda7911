"""The ComfyUI-facing layer: one module per node (its schema and its ``execute``), what they share in
``shared/``, and the list ComfyUI registers in ``catalog.py``; HTTP and image work live in
``wavespeed/``.

Importing this package imports nothing: the node modules import ``comfy_api.latest``, which only
ComfyUI has loaded when it calls the pack's ``comfy_entrypoint`` (catalog.py).
"""
