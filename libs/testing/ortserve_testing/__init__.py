"""Test and benchmark support: nothing here runs in production, and no service image installs it."""
