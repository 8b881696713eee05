"""`python -m genlab` (and `torchrun -m genlab`) run the command line."""

import sys

from genlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
