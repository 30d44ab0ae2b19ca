//! See DESIGN.md.

pub mod routing;
