"""The padata-style job engine: jobs split into chunks for a shared pool of native threads,
sized to the CPUs this process may use (`fastinit.host`). Standard library only."""
