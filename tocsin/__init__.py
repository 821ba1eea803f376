"""Tocsin: a streaming alarm system for plants and payment switches."""

__version__ = "0.1.0"
