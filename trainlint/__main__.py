"""`python -m trainlint` runs the command line."""

from trainlint.cli import main

main(prog_name="trainlint")
