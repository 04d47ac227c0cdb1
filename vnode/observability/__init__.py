"""Metrics (declared once, on a registry passed in) and structured logs carrying node and pod."""
