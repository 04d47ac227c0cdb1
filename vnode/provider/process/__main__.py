"""``python -m vnode.provider.process INSTANCE_DIR``: the runner of one instance (see ``runner``)."""

import sys

from vnode.provider.process import runner

sys.exit(runner.main())
