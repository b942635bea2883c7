"""``python -m mitml_jax``: the ``mitml-jax`` command line (:mod:`mitml_jax.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
