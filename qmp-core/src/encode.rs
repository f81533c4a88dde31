//! Envelope writer (being written).
