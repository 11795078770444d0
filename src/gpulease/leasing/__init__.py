"""Leasing: the capacity calendar that refuses overselling, and the price of a lease."""
