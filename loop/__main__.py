"""`python -m loop`: the same as the `loop` command."""

from .cli import main

main(prog_name="loop")
