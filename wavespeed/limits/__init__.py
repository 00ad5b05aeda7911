"""Living within an account's limits: submit admission per minute and at once, and the one poller per account."""
