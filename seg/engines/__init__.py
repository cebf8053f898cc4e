"""Engines: the network, the step and the weights' I/O of each framework."""
