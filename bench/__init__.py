"""vnode's benchmarks: `make bench` runs them; each writes its own section of docs/benchmarks.md."""
