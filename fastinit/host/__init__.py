"""What the host lets this process use: CPUs (affinity, cgroup quota, NUMA node CPU sets,
pinning), memory (MemAvailable within cgroup limits) and thread niceness, and the C
library calls made through ctypes (`libc`). Probes of Linux, below the engine that sizes
its pool by them. Standard library only."""
