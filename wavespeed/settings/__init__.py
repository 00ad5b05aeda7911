"""Where settings come from: the API key, the base URL and its one parse, numeric settings, the session budget."""
