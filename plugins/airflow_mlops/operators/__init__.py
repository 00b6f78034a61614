"""Thin operators: template fields plus an execute() that calls the core with URIs."""
