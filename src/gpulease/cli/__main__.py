"""``python -m gpulease.cli`` runs the ``gpulease`` command."""

from gpulease.cli.app import main

main()
