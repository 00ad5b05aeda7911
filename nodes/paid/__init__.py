"""The paid path: every paid node submits through one object (paid_path.py) and one POST (paid_post.py)."""
