//! One module per command group.

pub mod check;
pub mod inspect;
pub mod run;
