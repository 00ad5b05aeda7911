"""Empty node pack: ComfyUI needs a module here; the work happens in prestartup_script.py."""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
