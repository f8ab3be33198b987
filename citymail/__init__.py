"""citymail."""
