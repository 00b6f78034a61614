"""Triggers run in the triggerer, which imports them from the installed package."""
