"""Alembic script directory of the job store: ``env.py`` and ``versions/`` (run through ``jobs.migrate``)."""
