"""The simulator: discrete-event runs of the shared policies on modelled workers, with the traces,
experiments (goodput, capacity), tuning and `sloflow sim` / `sloflow tune` built on it."""
