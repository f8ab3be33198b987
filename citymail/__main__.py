import sys

from citymail.cli import main

sys.exit(main())
