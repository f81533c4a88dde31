//! Message classification (being written).
