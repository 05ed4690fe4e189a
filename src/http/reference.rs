//! Reference data for clients: the destination categories (毕业去向) with the fields and
//! proofs a registration under each needs, and the code lists those fields choose from —
//! what the platform's registration wizard shows (R14).

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::Caller;
use crate::domain::{Category, CodeList, Reference, Subcategory};

/// The destination categories, their known three-digit sub-codes and the code lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationCategories {
    /// Each category: code, names, group, whether only an approved agreement writes it
    /// (`written_by_agreement`, code 10: not registered by hand), its fields (name,
    /// labels, kind, required, max_len, code_list) and its proofs (kind, labels,
    /// required, min_count).
    #[schema(value_type = Vec<Object>)]
    pub categories: Vec<Category>,
    #[schema(value_type = Vec<Object>)]
    pub subcategories: Vec<Subcategory>,
    /// The lists a field with `code_list` takes its value from (code or Chinese name).
    #[schema(value_type = Vec<Object>)]
    pub code_lists: Vec<CodeList>,
}

/// Destination categories with their fields and proofs, for the registration wizard.
/// Any authenticated caller may read them.
#[utoipa::path(get, path = "/api/v1/reference/destination-categories", operation_id = "list_destination_categories", tag = "reference",
    responses((status = 200, body = DestinationCategories, description = "the categories and code lists")), security(("bearer" = [])))]
pub async fn destination_categories(Caller(_actor): Caller) -> Json<DestinationCategories> {
    let reference = Reference::builtin();
    Json(DestinationCategories {
        categories: reference.categories().to_vec(),
        subcategories: reference.subcategories().to_vec(),
        code_lists: reference.code_lists().to_vec(),
    })
}
