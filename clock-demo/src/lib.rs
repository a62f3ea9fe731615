//! The clock demo contract.
