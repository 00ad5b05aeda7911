"""Pixels: encoded bytes <-> ComfyUI IMAGE tensors, and several outputs -> one batch planned before decoding."""
