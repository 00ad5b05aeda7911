"""The account's limits: one submit scheduler and one poller per account, and the poll plan they follow."""
