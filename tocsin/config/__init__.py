"""Validated settings: every YAML file and environment setting Tocsin reads is parsed here,
once, at start-up, into pydantic models; errors name the file, line and field."""
