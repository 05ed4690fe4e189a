//! Domain values and reference data: parsed newtypes (credit codes, ID numbers, phones…), the validator
//! registry that workflow definitions call by name, and the 毕业去向 categories and code lists.
//!
//! # Layout
//! - `error` — [`FieldError`], the bilingual error every parser returns.
//! - `text`, `newtype` — input folding (full-width → half-width) and shared newtype impls.
//! - `credit_code`, `id_number`, `phone`, `email`, `codes` — one newtype per standard.
//! - `validators` — [`validate`]`(kind, json)`, the registry behind definitions' field kinds.
//! - `reference` (+ `reference/raw`, the file format), `registration` — [`Reference`] loaded from
//!   `reference/*.toml`, and checking a destination registration against it.
//!
//! This module knows no HTTP, database, workflow state or clock other than "today in China" for ID
//! birth dates (injectable through [`IdNumber::parse_on`]).

mod codes;
mod credit_code;
mod email;
mod error;
pub mod files;
mod id_number;
mod newtype;
pub mod parties;
mod phone;
pub mod rate;
mod reference;
mod registration;
mod text;
mod validators;

pub use codes::{Postcode, RegionCode};
pub use credit_code::CreditCode;
pub use email::Email;
pub use error::FieldError;
pub use id_number::{IdNumber, Sex};
pub use phone::{Phone, PhoneKind};
pub use reference::{
    CATEGORIES_FILE, CODE_LISTS_FILE, Category, CodeEntry, CodeList, FieldSpec, ProofSpec, Reference, ReferenceError,
    Subcategory,
};
pub use validators::{KINDS, is_bidi_control, known_kind, validate};
