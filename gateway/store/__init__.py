"""Durable state in SQLite (WAL): accepted orders, their tickets, and every reply already given."""
