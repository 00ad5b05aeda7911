"""The words every layer shares: the error family (errors as data), key redaction, task statuses and the Cancel callback."""
