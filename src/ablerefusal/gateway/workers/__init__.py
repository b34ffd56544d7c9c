"""Workers as the gateway sees them: the protocol v1 client (``client``), and the pool that spawns,
probes and supervises them (``pool``, ``supervisor``)."""
