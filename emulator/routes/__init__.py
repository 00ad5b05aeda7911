"""The emulator's HTTP side: routing, each API route's answer, uploads, multipart, and the wire."""
