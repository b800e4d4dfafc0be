"""Commitments: transparent generators (hash-to-curve), Pedersen vector commitments and Hyrax
polynomial commitments with zero-knowledge openings."""
