"""The paid path: every paid node submits through one call (submit.py), one POST (payment.py)."""
