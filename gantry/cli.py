"""The `gantry` command: placeholder until the generator and server land."""

def main() -> None:
    raise SystemExit("not yet")
