//! What the three GP systems' adapters share: the neutral [`model`] a record extract is read
//! into, and the one way it becomes UK Core-flavoured R4 ([`r4`]). Each system's module
//! (`systmone`, `emis`, `vision`) only reads its own format into the model and talks its own
//! HTTP interface.

pub mod client;
pub mod model;
pub mod r4;

#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
mod tests;
