"""listservs."""
