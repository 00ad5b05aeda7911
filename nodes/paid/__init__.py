"""The one paid path every paid node takes: validation, single-flight, Cancel, price, one POST, the journal."""
