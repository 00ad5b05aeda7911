"""Where the key and the base URL come from (never from a workflow), which image addresses the API may fetch, numeric settings, and the session's spend."""
