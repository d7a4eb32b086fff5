import sys

from qkv.cli.main import main

sys.exit(main())
