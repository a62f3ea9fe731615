//! Procedural macros for `hub-runtime`.
