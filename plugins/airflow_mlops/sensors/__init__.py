"""Sensors: waiting for data arrival without holding a worker slot (deferrable)."""
