//! Evaluates a definition's CEL conditions against a case: its parties, data, the input
//! being submitted, the params and the actor.

use serde_json::{Value, json};

use super::{Actor, CaseRef, Parties};
use crate::definition::{Definition, Expr};

/// Everything a condition may read, as JSON (the checker types conditions against the same names).
pub struct Scope {
    vars: Vec<(&'static str, Value)>,
}

impl Scope {
    pub fn new(def: &Definition, case: Option<&CaseRef>, parties: &Parties, actor: &Actor, input: &Value) -> Scope {
        Scope {
            vars: vec![
                ("student", parties.student.clone()),
                ("employer", parties.employer.clone()),
                ("school", parties.school.clone()),
                ("data", case.map(|c| c.data.clone()).unwrap_or_else(|| json!({}))),
                ("input", input.clone()),
                ("params", def.params_json()),
                (
                    "actor",
                    json!({ "role": actor.role.as_str(), "party": actor.party, "school": actor.school }),
                ),
                ("state", json!(case.map(|c| c.state.as_str()).unwrap_or(""))),
                (
                    "documents",
                    case.map(|c| c.documents.clone()).unwrap_or_else(|| json!({})),
                ),
                ("held_elsewhere", held_elsewhere(def, case)),
            ],
        }
    }

    /// True or false; anything else (an error, a non-boolean) is reported with the source.
    pub fn holds(&self, expr: &Expr) -> Result<bool, String> {
        let mut ctx = cel::Context::default();
        for (name, value) in &self.vars {
            let value = cel::to_value(value).map_err(|e| format!("{name}: {e}"))?;
            ctx.add_variable_from_value(*name, value);
        }
        match expr.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition `{}` gave {other:?}, not true or false", expr.source)),
            Err(e) => Err(format!("condition `{}` failed: {e}", expr.source)),
        }
    }
}

/// `held_elsewhere.destination`: for every claim of the definition, whether another case
/// holds this case's key.
fn held_elsewhere(def: &Definition, case: Option<&CaseRef>) -> Value {
    let held = |name: &str| case.is_some_and(|c| c.held_elsewhere.iter().any(|h| h == name));
    Value::Object(
        def.claims
            .keys()
            .map(|name| (name.clone(), json!(held(name))))
            .collect(),
    )
}
