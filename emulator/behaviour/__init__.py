"""What the emulated API does: models and validation, task lifecycle, account tiers, faults, images."""
