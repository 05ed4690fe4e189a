//! The type check of conditions: every CEL condition is typed against what the case
//! declares — the fields of the definition's forms (as `data.…` and `input.…`), its params,
//! its claims (`held_elsewhere.…`), the parties' records, the actor, the state and the
//! documents — before it is accepted. A condition that is not boolean, that names
//! something undeclared, or that applies an operator to values of the wrong types is
//! refused here, not at run time.

use std::collections::BTreeMap;

use cel::common::ast::{EntryExpr, Expr, LiteralValue};

/// The type of a value a condition reads or computes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Timestamp,
    Duration,
    List(Box<Ty>),
    /// A map with string keys, every value of one type.
    Map(Box<Ty>),
    /// A record of declared fields (the case data, a party, the params…), named for messages.
    Object(String, BTreeMap<String, Ty>),
    /// Unknown until run time (a destination registration, an element of `[]`).
    Dyn,
}

impl Ty {
    fn name(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Double => "double".into(),
            Ty::String => "string".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Null => "null".into(),
            Ty::Timestamp => "timestamp".into(),
            Ty::Duration => "duration".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Map(t) => format!("map(string, {})", t.name()),
            Ty::Object(name, _) => format!("`{name}` (a record)"),
            Ty::Dyn => "dyn".into(),
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// Whether values of the two types may be compared with `==`, `<`, …
    fn comparable(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, _) | (_, Ty::Dyn) | (Ty::Null, _) | (_, Ty::Null) => true,
            (a, b) if a.numeric() && b.numeric() => true,
            (Ty::List(a), Ty::List(b)) | (Ty::Map(a), Ty::Map(b)) => a.comparable(b),
            (Ty::Object(..), Ty::Object(..) | Ty::Map(_)) | (Ty::Map(_), Ty::Object(..)) => true,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    /// Whether `<`, `>`, … order values of this type.
    fn ordered(&self) -> bool {
        matches!(
            self,
            Ty::Int
                | Ty::Uint
                | Ty::Double
                | Ty::String
                | Ty::Timestamp
                | Ty::Duration
                | Ty::Bytes
                | Ty::Bool
                | Ty::Dyn
        )
    }

    /// A record of the given (dotted) paths, nested: `terms.position` → `terms { position }`.
    pub(crate) fn record(name: &str, paths: &[(String, Ty)]) -> Ty {
        let mut fields = BTreeMap::new();
        for (path, ty) in paths {
            insert_path(&mut fields, name, path, ty.clone());
        }
        Ty::Object(name.to_string(), fields)
    }
}

fn insert_path(fields: &mut BTreeMap<String, Ty>, prefix: &str, path: &str, ty: Ty) {
    match path.split_once('.') {
        None => {
            // A dotted field declared beside a plain one of the same name keeps the record.
            fields.entry(path.to_string()).or_insert(ty);
        }
        Some((head, rest)) => {
            let name = format!("{prefix}.{head}");
            let entry = fields
                .entry(head.to_string())
                .or_insert_with(|| Ty::Object(name.clone(), BTreeMap::new()));
            match entry {
                Ty::Object(_, inner) => insert_path(inner, &name, rest, ty),
                other => *other = Ty::Dyn,
            }
        }
    }
}

/// The CEL type of a form field of `kind` as the engine stores it.
pub(crate) fn kind_type(kind: &str) -> Ty {
    match kind {
        "bool" => Ty::Bool,
        "integer" => Ty::Int,
        "money" => Ty::Double,
        // A registration object under a category of the reference data: its fields depend
        // on the category.
        "destination" => Ty::Dyn,
        _ => Ty::String,
    }
}

/// The CEL type of a param's TOML value.
pub(crate) fn toml_type(value: &toml::Value) -> Ty {
    match value {
        toml::Value::String(_) => Ty::String,
        toml::Value::Integer(_) => Ty::Int,
        toml::Value::Float(_) => Ty::Double,
        toml::Value::Boolean(_) => Ty::Bool,
        toml::Value::Datetime(_) => Ty::String,
        toml::Value::Array(items) => Ty::List(Box::new(items.first().map(toml_type).unwrap_or(Ty::Dyn))),
        toml::Value::Table(t) => Ty::Object(
            "params".into(),
            t.iter().map(|(k, v)| (k.clone(), toml_type(v))).collect(),
        ),
    }
}

/// Types one expression in `scope`; problems are collected in `errors`.
pub(crate) struct Typer<'a> {
    scope: Vec<(String, Ty)>,
    pub errors: Vec<String>,
    roots: &'a [(&'a str, Ty)],
}

impl<'a> Typer<'a> {
    pub(crate) fn new(roots: &'a [(&'a str, Ty)]) -> Typer<'a> {
        Typer {
            scope: Vec::new(),
            errors: Vec::new(),
            roots,
        }
    }

    /// The condition's type must be `bool`.
    pub(crate) fn condition(&mut self, expr: &cel::IdedExpr) {
        let ty = self.ty(&expr.expr, 0);
        if !matches!(ty, Ty::Bool | Ty::Dyn) {
            self.errors
                .push(format!("is of type {}, not a condition (true or false)", ty.name()));
        }
    }

    fn err(&mut self, message: String) -> Ty {
        self.errors.push(message);
        Ty::Dyn
    }

    fn lookup(&self, name: &str) -> Option<Ty> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .or_else(|| self.roots.iter().find(|(n, _)| *n == name).map(|(_, t)| t.clone()))
    }

    fn ty(&mut self, expr: &Expr, depth: usize) -> Ty {
        // The parser bounds nesting; this keeps a hand-built tree from exhausting the stack.
        if depth > 200 {
            return self.err("is nested too deeply".into());
        }
        let d = depth + 1;
        match expr {
            Expr::Unspecified => Ty::Dyn,
            Expr::Literal(lit) => match lit {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            },
            Expr::Ident(name) => match self.lookup(name) {
                Some(t) => t,
                None => {
                    let known: Vec<&str> = self.roots.iter().map(|(n, _)| *n).collect();
                    self.err(format!("uses unknown name `{name}`; known: {}", known.join(", ")))
                }
            },
            Expr::Select(select) => {
                let operand = self.ty(&select.operand.expr, d);
                let field = self.field(&operand, &select.field);
                if select.test { Ty::Bool } else { field }
            }
            Expr::List(list) => {
                let mut elem = None;
                for e in &list.elements {
                    let t = self.ty(&e.expr, d);
                    elem = Some(match elem {
                        None => t,
                        Some(prev) if prev == t => prev,
                        Some(_) => Ty::Dyn,
                    });
                }
                Ty::List(Box::new(elem.unwrap_or(Ty::Dyn)))
            }
            Expr::Map(map) => {
                let mut value = None;
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        self.ty(&e.key.expr, d);
                        let t = self.ty(&e.value.expr, d);
                        value = Some(match value {
                            None => t,
                            Some(prev) if prev == t => prev,
                            Some(_) => Ty::Dyn,
                        });
                    }
                }
                Ty::Map(Box::new(value.unwrap_or(Ty::Dyn)))
            }
            Expr::Struct(s) => self.err(format!(
                "builds a message `{}`, which conditions do not have",
                s.type_name
            )),
            Expr::Comprehension(c) => {
                let range = self.ty(&c.iter_range.expr, d);
                let (first, second) = match &range {
                    Ty::List(t) => (Ty::Int, (**t).clone()),
                    Ty::Map(t) => (Ty::String, (**t).clone()),
                    Ty::Object(..) => (Ty::String, Ty::Dyn),
                    Ty::Dyn => (Ty::Dyn, Ty::Dyn),
                    other => {
                        let name = other.name();
                        return self.err(format!("iterates over a {name}, which is no list or map"));
                    }
                };
                let base = self.scope.len();
                match &c.iter_var2 {
                    Some(v2) => {
                        self.scope.push((c.iter_var.clone(), first));
                        self.scope.push((v2.clone(), second));
                    }
                    None => {
                        let single = if matches!(range, Ty::List(_)) { second } else { first };
                        self.scope.push((c.iter_var.clone(), single));
                    }
                }
                let accu = self.ty(&c.accu_init.expr, d);
                self.scope.push((c.accu_var.clone(), accu));
                self.ty(&c.loop_cond.expr, d);
                let step = self.ty(&c.loop_step.expr, d);
                // `map` grows a list of what its step computes.
                if let Some(slot) = self.scope.last_mut() {
                    slot.1 = step;
                }
                let result = self.ty(&c.result.expr, d);
                self.scope.truncate(base);
                result
            }
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args, d),
        }
    }

    fn field(&mut self, operand: &Ty, field: &str) -> Ty {
        match operand {
            Ty::Object(name, fields) => match fields.get(field) {
                Some(t) => t.clone(),
                None => {
                    let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                    let known = if known.is_empty() {
                        "nothing".to_string()
                    } else {
                        known.join(", ")
                    };
                    self.err(format!("uses unknown name `{name}.{field}`; `{name}` has: {known}"))
                }
            },
            Ty::Map(t) => (**t).clone(),
            Ty::Dyn => Ty::Dyn,
            other => {
                let name = other.name();
                self.err(format!("selects `.{field}` of a {name}"))
            }
        }
    }

    fn call(&mut self, name: &str, target: Option<&cel::IdedExpr>, args: &[cel::IdedExpr], d: usize) -> Ty {
        let target = target.map(|t| self.ty(&t.expr, d));
        let args: Vec<Ty> = args.iter().map(|a| self.ty(&a.expr, d)).collect();
        use cel::common::ast::operators as op;
        let arity = |n: usize| args.len() == n && target.is_none();
        match name {
            op::LOGICAL_NOT if arity(1) => {
                self.expect_bool(&args[0], "`!`");
                Ty::Bool
            }
            op::LOGICAL_AND | op::LOGICAL_OR if arity(2) => {
                let what = if name == op::LOGICAL_AND { "`&&`" } else { "`||`" };
                self.expect_bool(&args[0], what);
                self.expect_bool(&args[1], what);
                Ty::Bool
            }
            op::NOT_STRICTLY_FALSE if arity(1) => Ty::Bool,
            op::CONDITIONAL if arity(3) => {
                self.expect_bool(&args[0], "the condition of `? :`");
                if args[1] == args[2] { args[1].clone() } else { Ty::Dyn }
            }
            op::EQUALS | op::NOT_EQUALS if arity(2) => {
                if !args[0].comparable(&args[1]) {
                    self.errors.push(format!(
                        "compares a {} with a {}, which is never equal",
                        args[0].name(),
                        args[1].name()
                    ));
                }
                Ty::Bool
            }
            op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS if arity(2) => {
                let (a, b) = (&args[0], &args[1]);
                if !a.ordered() || !b.ordered() || !a.comparable(b) {
                    self.errors.push(format!(
                        "orders a {} against a {}, which cannot be ordered",
                        a.name(),
                        b.name()
                    ));
                }
                Ty::Bool
            }
            op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO if arity(2) => {
                self.arithmetic(name, &args[0], &args[1])
            }
            op::NEGATE if arity(1) => {
                if !(args[0].numeric() || matches!(args[0], Ty::Dyn | Ty::Duration)) {
                    self.errors.push(format!("negates a {}", args[0].name()));
                }
                args[0].clone()
            }
            op::IN if arity(2) => {
                match &args[1] {
                    Ty::List(_) | Ty::Map(_) | Ty::Object(..) | Ty::Dyn => {}
                    other => {
                        self.errors
                            .push(format!("asks `in` of a {}, which is no list or map", other.name()));
                    }
                }
                Ty::Bool
            }
            op::INDEX | op::OPT_INDEX if arity(2) => match &args[0] {
                Ty::List(t) => {
                    if !matches!(args[1], Ty::Int | Ty::Uint | Ty::Dyn) {
                        self.errors.push(format!("indexes a list with a {}", args[1].name()));
                    }
                    (**t).clone()
                }
                Ty::Map(t) => (**t).clone(),
                Ty::Object(..) | Ty::Dyn => Ty::Dyn,
                other => {
                    let name = other.name();
                    self.err(format!("indexes a {name}"))
                }
            },
            "size" => {
                let of = target.as_ref().or(args.first());
                match of {
                    Some(Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(_) | Ty::Object(..) | Ty::Dyn) => Ty::Int,
                    Some(other) => {
                        let name = other.name();
                        self.err(format!("asks the size of a {name}"))
                    }
                    None => self.err("calls `size` without an argument".into()),
                }
            }
            "contains" | "startsWith" | "endsWith" | "matches" => {
                for t in target.iter().chain(args.iter()) {
                    if !matches!(t, Ty::String | Ty::Dyn) {
                        self.errors
                            .push(format!("calls `{name}` on a {}, not a string", t.name()));
                    }
                }
                Ty::Bool
            }
            "int" => Ty::Int,
            "uint" => Ty::Uint,
            "double" => Ty::Double,
            "string" => Ty::String,
            "bytes" => Ty::Bytes,
            "bool" => Ty::Bool,
            "timestamp" => Ty::Timestamp,
            "duration" => Ty::Duration,
            "dyn" => Ty::Dyn,
            "has" => Ty::Bool,
            "max" | "min" => args.first().cloned().unwrap_or(Ty::Dyn),
            "getFullYear" | "getMonth" | "getDate" | "getDayOfMonth" | "getDayOfWeek" | "getDayOfYear" | "getHours"
            | "getMinutes" | "getSeconds" | "getMilliseconds" => Ty::Int,
            _ => self.err(format!("calls unknown function `{name}`")),
        }
    }

    fn expect_bool(&mut self, ty: &Ty, what: &str) {
        if !matches!(ty, Ty::Bool | Ty::Dyn) {
            self.errors
                .push(format!("applies {what} to a {}, which is not true or false", ty.name()));
        }
    }

    fn arithmetic(&mut self, op: &str, a: &Ty, b: &Ty) -> Ty {
        use cel::common::ast::operators as ops;
        let sign = op.trim_matches('_');
        match (a, b) {
            (Ty::Dyn, t) | (t, Ty::Dyn) => {
                if matches!(t, Ty::Bool | Ty::Null | Ty::Object(..)) {
                    let name = t.name();
                    return self.err(format!("applies `{sign}` to a {name}"));
                }
                Ty::Dyn
            }
            (x, y) if x.numeric() && y.numeric() => {
                if x == y {
                    x.clone()
                } else {
                    self.err(format!(
                        "applies `{sign}` to a {} and a {}; convert one with int() or double()",
                        x.name(),
                        y.name()
                    ))
                }
            }
            (Ty::String, Ty::String) | (Ty::Bytes, Ty::Bytes) if op == ops::ADD => a.clone(),
            (Ty::List(x), Ty::List(y)) if op == ops::ADD => {
                Ty::List(Box::new(if x == y { (**x).clone() } else { Ty::Dyn }))
            }
            (Ty::Timestamp, Ty::Duration) if op == ops::ADD || op == ops::SUBSTRACT => Ty::Timestamp,
            (Ty::Duration, Ty::Timestamp) if op == ops::ADD => Ty::Timestamp,
            (Ty::Timestamp, Ty::Timestamp) if op == ops::SUBSTRACT => Ty::Duration,
            (Ty::Duration, Ty::Duration) if op == ops::ADD || op == ops::SUBSTRACT => Ty::Duration,
            (x, y) => self.err(format!("applies `{sign}` to a {} and a {}", x.name(), y.name())),
        }
    }
}
