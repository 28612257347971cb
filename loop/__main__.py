"""`python -m loop`: the same as the `loop` command."""

from loop.cli import main

main(prog_name="loop")
