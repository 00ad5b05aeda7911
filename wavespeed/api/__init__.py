"""The WaveSpeed API's shapes: the FLUX.1 Kontext [max] request and its prediction reply, and reading any reply totally."""
