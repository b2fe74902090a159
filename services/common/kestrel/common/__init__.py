"""What more than one Kestrel service needs: configuration, the request event, lifecycle.

Nothing else is shared between services; each role (edge, scheduler, logger, sim) owns its
own package under ``kestrel``.
"""
