//! Runtime (std).
