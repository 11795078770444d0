"""Pure domain vocabulary shared by every layer: errors, states, clocks. No I/O."""
