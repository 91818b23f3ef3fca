"""Topiary umbrella package: the `topiary` command line."""
