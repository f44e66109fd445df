"""The catalog's schema migrations (Alembic): ``env.py`` and one script per revision in ``versions/``.

Run by ``gateway db upgrade`` (``services.catalog.migrate``), never by the workers; there is
no ``alembic.ini``: the configuration is built in code, so an installed wheel carries all
it needs. A new revision: ``gateway db revision -m "what changes" --autogenerate``, then add
its id to ``REVISIONS`` in ``services/catalog/schema.py``.
"""
