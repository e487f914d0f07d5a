"""``python -m docworkers.cli``."""

from docworkers.cli.app import main

if __name__ == "__main__":  # spawned worker processes import this module without running it
    main()
