import sys

from vnode.cli import main

sys.exit(main())
