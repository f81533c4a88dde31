//! qmp-std: the std adapter for qmp-core (sockets, the `qmp` tool). Being written.
