"""vnode: virtual nodes for Kubernetes whose pods run as elastic cloud container instances."""

__version__ = "0.1.0"
__all__ = ["__version__"]
