"""What every node uses: the ComfyUI bridge, the client and worker pool, status lines, the task handle, inputs."""
