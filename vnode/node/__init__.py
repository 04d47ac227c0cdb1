"""The controller side: the Node and its Lease, the pod watch and work queue, one pod's reconcile, pod status."""
