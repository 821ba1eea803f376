"""Offline jobs over files and simulator runs: evaluation of the plant detectors."""
