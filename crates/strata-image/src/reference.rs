//! Image references: `strata-types`' [`ImageRef`], Docker's grammar and
//! normalisation, re-exported where the formats use them.

pub use strata_types::{ImageRef, InvalidReference};
