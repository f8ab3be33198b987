"""newsletters."""
