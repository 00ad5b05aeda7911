"""Never paying twice, never losing a paid result: the SQLite task journal, single-flight and the history search."""
