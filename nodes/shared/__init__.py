"""What every node shares: the only bridge to ComfyUI internals, the client per key, progress, price badges, the task value, image inputs."""
