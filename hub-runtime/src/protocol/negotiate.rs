//! Negotiate (placeholder).
