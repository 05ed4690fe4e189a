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
                    json!({ "role": actor.role.as_str(), "party": actor.party, "school": actor.school, "college": actor.college }),
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

    /// Whether the condition holds. The checker typed it against what the definition
    /// declares, so what is left for run time is a case without a value the condition
    /// reads — an optional field left empty, a party record without the attribute, a
    /// null: such a condition does not hold (CEL's `has(…)` asks whether a value is
    /// there). It is logged, and it never fails a request. `Err` only when the scope
    /// itself cannot be given to CEL.
    pub fn holds(&self, expr: &Expr) -> Result<bool, String> {
        let mut ctx = cel::Context::default();
        for (name, value) in &self.vars {
            let value = cel::to_value(value).map_err(|e| format!("{name}: {e}"))?;
            ctx.add_variable_from_value(*name, value);
        }
        match expr.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => {
                tracing::warn!(condition = %expr.source, value = ?other, "a condition gave no true or false: it does not hold");
                Ok(false)
            }
            Err(e) => {
                tracing::debug!(condition = %expr.source, error = %e, "a condition read a value the case does not have: it does not hold");
                Ok(false)
            }
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
