"""Run the command line from a source checkout: ``python cli.py ...`` (the installed entry
points are ``pseudosnn`` and ``pseudosnn-compile``, from :mod:`pseudosnn.cli`)."""

from pseudosnn.cli import main

if __name__ == "__main__":
    main()
