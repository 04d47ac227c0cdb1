"""Providers: the small interface in ``base`` and one module per cloud; ``registry`` finds them by name."""
