"""Images: encoded bytes <-> ComfyUI IMAGE tensors, and a task's outputs planned into one batch before any decode."""
