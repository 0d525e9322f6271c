"""The simulated boot, named after Linux's mm/: the plan (reservations, deferral, thread
caps), the memmap in memory or in a file, early init, parallel deferred init, the buddy
allocator model, and verification against the serial reference."""
