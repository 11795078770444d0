"""Hardware catalogue and the topology tree (site > rack > node > GPU). Pure."""
