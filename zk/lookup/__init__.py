"""Lookup arguments: public tables and selectors, layered fraction sums (GKR), the logarithmic-
derivative lookup (tlookup) and the statements built on it (ranges, rounding, clipping)."""
