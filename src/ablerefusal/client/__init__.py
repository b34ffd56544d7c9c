"""The CLI client of a running gateway (``ablerefusal generate``): plain HTTP, no gateway or worker imports."""
