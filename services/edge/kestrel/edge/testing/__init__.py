"""Fakes, factories and validators for tests of the edge (shipped in the package, as mitmproxy does)."""
