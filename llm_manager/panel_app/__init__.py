"""The Panel dashboard (``create_dashboard`` in :mod:`.dashboard`; ``app.py`` for ``panel serve``)."""
