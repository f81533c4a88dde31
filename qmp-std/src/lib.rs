//! qmp-std (being written).
