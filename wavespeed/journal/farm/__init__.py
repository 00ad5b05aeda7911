"""The farm's journal: the same journal in one PostgreSQL database that every worker of an account shares."""
