"""The ``kestrel`` command: one subcommand per role. Filled in below."""

def main() -> None:  # placeholder replaced when the edge lands
    raise SystemExit("kestrel: not built yet")
