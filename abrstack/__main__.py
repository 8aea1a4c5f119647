import sys

from abrstack.cli import main

sys.exit(main())
