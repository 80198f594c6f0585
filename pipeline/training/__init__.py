"""Training: batching, losses (force/energy, bias weights, sliced score matching), the engine and
the ASTEROID stages."""
