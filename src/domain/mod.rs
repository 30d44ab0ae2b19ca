//! Types that validate on parse and the business rules as pure functions.
//! Nothing in here does I/O.

mod lang;

pub use lang::{Lang, ParseLangError};
