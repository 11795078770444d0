"""The pure scheduling core: snapshot + now -> decisions. No clock, no I/O, no globals."""
