"""The ``process`` provider: a pod's containers as processes on this host (a development provider).

``profile`` declares it to the core; ``provider`` is the daemon's side; the runner program
(``python -m vnode.provider.process``) supervises one instance's processes.
"""
