"""Fixtures shared by the contract suite."""
