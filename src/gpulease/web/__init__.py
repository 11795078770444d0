"""The web dashboard: server-rendered pages under ``/ui``, another edge beside ``api`` and ``cli``.

Design. Pages call the same services with the same :class:`~gpulease.domain.access.Principal`
as the API: a page never reads the database itself and never decides who may see what (the
services do, through ``domain.access``). A template only lays out what its route handed it.

* :mod:`gpulease.web.session`: the login form (an API token), the session cookie, CSRF
  tokens and the Origin check, the ``Viewer`` and ``Poster`` dependencies;
* :mod:`gpulease.web.render`: the Jinja2 environment, :func:`~gpulease.web.render.page`,
  the route class that turns errors into pages and sets the security headers;
* :mod:`gpulease.web.svg`: charts as SVG, pure functions;
* :mod:`gpulease.web.pages`: one module per page (its router and its navigation entry);
* :mod:`gpulease.web.app`: :func:`~gpulease.web.app.install`, called by ``api.app``.

Static files (``static/``: htmx, the style sheet) are served from the package; nothing is
loaded from another host, and the Content-Security-Policy allows scripts from this origin
only (no inline script, no ``eval``).
"""
