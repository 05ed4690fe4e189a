//! Evaluates a definition's CEL conditions against a case: its parties, data, the input
//! being submitted, the params and the actor.

use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};

use super::{Actor, CaseRef, Parties};
use crate::definition::{Definition, Expr};

/// CEL's standard library, declared once per process: declaring it again for each
/// condition was most of what evaluating one cost.
static STDLIB: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// Everything a condition may read (the checker types conditions against the same
/// names), given to CEL once for all the conditions a request evaluates.
pub struct Scope {
    ctx: Result<cel::Context<'static, 'static>, String>,
}

impl Scope {
    pub fn new(def: &Definition, case: Option<&CaseRef>, parties: &Parties, actor: &Actor, input: &Value) -> Scope {
        let empty = json!({});
        let params = def.params_json();
        let who = json!({ "role": actor.role.as_str(), "party": actor.party, "school": actor.school, "college": actor.college });
        let state = json!(case.map(|c| c.state.as_str()).unwrap_or(""));
        let held = held_elsewhere(def, case);
        let vars: [(&str, &Value); 10] = [
            ("student", &parties.student),
            ("employer", &parties.employer),
            ("school", &parties.school),
            ("data", case.map_or(&empty, |c| &c.data)),
            ("input", input),
            ("params", &params),
            ("actor", &who),
            ("state", &state),
            ("documents", case.map_or(&empty, |c| &c.documents)),
            ("held_elsewhere", &held),
        ];
        let mut ctx = cel::Context::with_env(STDLIB.clone());
        for (name, value) in vars {
            match cel::to_value(value) {
                Ok(value) => ctx.add_variable_from_value(name, value),
                Err(e) => {
                    return Scope {
                        ctx: Err(format!("{name}: {e}")),
                    };
                }
            }
        }
        Scope { ctx: Ok(ctx) }
    }

    /// Whether the condition holds. The checker typed it against what the definition
    /// declares, so what is left for run time is a case without a value the condition
    /// reads — an optional field left empty, a party record without the attribute, a
    /// null: such a condition does not hold (CEL's `has(…)` asks whether a value is
    /// there). It is logged, and it never fails a request. `Err` only when the scope
    /// itself cannot be given to CEL.
    pub fn holds(&self, expr: &Expr) -> Result<bool, String> {
        let ctx = self.ctx.as_ref().map_err(Clone::clone)?;
        match expr.program.execute(ctx) {
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
