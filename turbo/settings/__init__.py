"""Pydantic models of every experiment file. Importing them imports no torch."""
