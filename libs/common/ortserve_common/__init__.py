"""Shared building blocks of the ortserve services (no service imports another; they all import this)."""
