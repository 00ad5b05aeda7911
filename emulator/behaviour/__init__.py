"""What the emulated service does: tasks and their clock, models, account tiers, stand-in images, and faults on purpose."""
