"""Pure-Python WaveSpeed v3 layer: config, request models, client, image codec.

Knows nothing of ComfyUI. Importing the package is cheap on purpose (the client pulls in
``requests`` and the codec pulls in torch only when their modules are imported).
"""
