"""Persistence: the only package that imports SQLAlchemy (tables, transactions, migrations)."""
