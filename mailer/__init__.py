"""mailer."""
