"""The on-disk task journal: no paid task is lost, identical submits pay once, interrupted ones are found again."""
