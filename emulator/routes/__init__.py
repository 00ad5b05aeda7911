"""The emulator's HTTP side: routing, reply plumbing, request echo, history and upload routes."""
