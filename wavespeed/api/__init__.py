"""The WaveSpeed API contract as data: requests, replies, shared names, the error family, key redaction."""
