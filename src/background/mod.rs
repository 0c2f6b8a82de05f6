//! Background work: the upkeep that runs beside the requests on every instance.

pub(crate) mod deletion;
pub mod login_log;
pub(crate) mod reminder;
