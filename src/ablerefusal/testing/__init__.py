"""Test-only model makers: tiny random-weight models and full-size random pipelines (their images are noise).

Tests, benchmarks and ``ablerefusal models make-tiny`` use them; no other production code imports this package.
"""
