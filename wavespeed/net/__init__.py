"""Talking to WaveSpeed over HTTP: the client, wall-clock deadlines and Cancel, retries, uploads and downloads."""
