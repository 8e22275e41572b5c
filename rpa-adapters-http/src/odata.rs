//! OData query options as UiPath's clients send them: `$filter`,
//! `$orderby`, `$select`, `$top`, `$skip`, `$count`. Pure: text in, a
//! parsed query out, applied to entities already rendered as JSON.
//!
//! `$filter` grammar (precedence `not` > `and` > `or`):
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | func | compare
//! func    := ("contains" | "startswith" | "endswith") "(" path "," literal ")"
//! compare := path ("eq" | "ne" | "gt" | "lt" | "ge" | "le") literal
//!          | path "in" "(" literal ("," literal)* ")"
//! path    := Name ("/" Name)*          (matched case-insensitively)
//! literal := 'text' ('' escapes a quote) | number | true | false | null
//!          | guid'...' | datetime'...' | a bare date-time (2026-11-30T08:00:00Z)
//! ```
//!
//! Strings compare without regard to case (as UiPath's database does);
//! numbers as numbers; ISO 8601 times as text, which orders them.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `lt`.
    Lt,
    /// `ge`.
    Ge,
    /// `le`.
    Le,
}

/// A string function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `contains(path, 'x')`.
    Contains,
    /// `startswith(path, 'x')`.
    StartsWith,
    /// `endswith(path, 'x')`.
    EndsWith,
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Not.
    Not(Box<Expr>),
    /// `path op literal`.
    Compare(Vec<String>, Op, Value),
    /// `path in (literals)`.
    In(Vec<String>, Vec<Value>),
    /// `func(path, 'text')`.
    Call(Func, Vec<String>, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
}

fn tokens(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("a quoted text is not closed".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            text.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Text(text));
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | ',' | '\'') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // guid'...', datetime'...': the prefix says what the quoted text is.
                if i < chars.len()
                    && chars[i] == '\''
                    && matches!(
                        word.to_ascii_lowercase().as_str(),
                        "guid" | "datetime" | "datetimeoffset"
                    )
                {
                    continue;
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, want: Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            _ => Err(format!("expected {what}")),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word().as_deref() == Some("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word().as_deref() == Some("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word().as_deref() == Some("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let e = self.or()?;
            self.expect(Token::Close, "')'")?;
            return Ok(e);
        }
        let func = match self.peek_word().as_deref() {
            Some("contains") => Some(Func::Contains),
            Some("startswith") => Some(Func::StartsWith),
            Some("endswith") => Some(Func::EndsWith),
            _ => None,
        };
        if let Some(f) = func
            && self.tokens.get(self.at + 1) == Some(&Token::Open)
        {
            self.at += 2;
            let path = self.path()?;
            self.expect(Token::Comma, "','")?;
            let text = match self.literal()? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.expect(Token::Close, "')'")?;
            return Ok(Expr::Call(f, path, text));
        }
        let path = self.path()?;
        let op = self.next();
        let op = match &op {
            Some(Token::Word(w)) => w.to_ascii_lowercase(),
            _ => return Err("expected an operator (eq, ne, gt, lt, ge, le, in)".into()),
        };
        let op = match op.as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "ge" => Op::Ge,
            "le" => Op::Le,
            "in" => {
                self.expect(Token::Open, "'(' after in")?;
                let mut values = vec![self.literal()?];
                while self.tokens.get(self.at) == Some(&Token::Comma) {
                    self.at += 1;
                    values.push(self.literal()?);
                }
                self.expect(Token::Close, "')'")?;
                return Ok(Expr::In(path, values));
            }
            other => return Err(format!("unknown operator '{other}'")),
        };
        Ok(Expr::Compare(path, op, self.literal()?))
    }

    fn path(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Word(w)) if w.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') => {
                Ok(w.split('/').map(str::to_owned).collect())
            }
            _ => Err("expected a property name".into()),
        }
    }

    fn literal(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Token::Text(s)) => Ok(Value::String(s)),
            Some(Token::Word(w)) => {
                let lower = w.to_ascii_lowercase();
                Ok(match lower.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => match w.parse::<i64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => match w.parse::<f64>() {
                            Ok(f) if f.is_finite() => Value::from(f),
                            _ if w.contains('-') || w.contains(':') => Value::String(w),
                            _ => return Err(format!("'{w}' is not a value")),
                        },
                    },
                })
            }
            _ => Err("expected a value".into()),
        }
    }
}

/// Parses a `$filter`.
pub fn parse_filter(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        tokens: tokens(s)?,
        at: 0,
    };
    let e = p.or()?;
    if p.at < p.tokens.len() {
        return Err("unexpected text after the expression".into());
    }
    Ok(e)
}

/// The value at `path` in `v` (property names without regard to case).
pub fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for name in path {
        let Value::Object(m) = cur else {
            return None;
        };
        cur = m
            .get(name)
            .or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))?;
    }
    Some(cur)
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::String(x), Value::Number(y)) => x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?),
        (Value::Number(x), Value::String(y)) => x.as_f64()?.partial_cmp(&y.parse::<f64>().ok()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// Whether `v` passes `e`. A property the entity lacks is null.
pub fn eval(e: &Expr, v: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, v) && eval(b, v),
        Expr::Or(a, b) => eval(a, v) || eval(b, v),
        Expr::Not(a) => !eval(a, v),
        Expr::Compare(path, op, lit) => {
            let have = lookup(v, path).unwrap_or(&Value::Null);
            let ord = compare(have, lit);
            match op {
                Op::Eq => ord == Some(Ordering::Equal),
                Op::Ne => ord != Some(Ordering::Equal),
                Op::Gt => ord == Some(Ordering::Greater),
                Op::Lt => ord == Some(Ordering::Less),
                Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            }
        }
        Expr::In(path, lits) => {
            let have = lookup(v, path).unwrap_or(&Value::Null);
            lits.iter().any(|l| compare(have, l) == Some(Ordering::Equal))
        }
        Expr::Call(f, path, text) => {
            let Some(Value::String(have)) = lookup(v, path) else {
                return false;
            };
            let (have, text) = (have.to_lowercase(), text.to_lowercase());
            match f {
                Func::Contains => have.contains(&text),
                Func::StartsWith => have.starts_with(&text),
                Func::EndsWith => have.ends_with(&text),
            }
        }
    }
}

/// The paths a `$filter` reads (to check them against an entity's properties).
pub fn paths(e: &Expr) -> Vec<&[String]> {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            let mut v = paths(a);
            v.extend(paths(b));
            v
        }
        Expr::Not(a) => paths(a),
        Expr::Compare(p, ..) | Expr::In(p, _) | Expr::Call(_, p, _) => vec![p.as_slice()],
    }
}

/// A parsed `$orderby`: paths, each descending or not.
pub fn parse_orderby(s: &str) -> Result<Vec<(Vec<String>, bool)>, String> {
    s.split(',')
        .map(|part| {
            let mut words = part.split_whitespace();
            let path = words.next().ok_or("an empty $orderby")?;
            let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(format!("'{other}' is not asc or desc")),
            };
            if words.next().is_some() {
                return Err(format!("'{part}' is not a property and a direction"));
            }
            Ok((path.split('/').map(str::to_owned).collect(), desc))
        })
        .collect()
}

/// Sorts `values` by `order` (stable: ties keep their order).
pub fn order(values: &mut [Value], order: &[(Vec<String>, bool)]) {
    values.sort_by(|a, b| {
        for (path, desc) in order {
            let x = lookup(a, path).unwrap_or(&Value::Null);
            let y = lookup(b, path).unwrap_or(&Value::Null);
            let o = compare(x, y).unwrap_or_else(|| rank(x).cmp(&rank(y)));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        _ => 4,
    }
}

/// Keeps only the `$select`ed properties (names without regard to case).
pub fn select(v: Value, names: &[String]) -> Value {
    match v {
        Value::Object(m) if !names.is_empty() => Value::Object(
            m.into_iter()
                .filter(|(k, _)| k.starts_with("@odata") || names.iter().any(|n| n.eq_ignore_ascii_case(k)))
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn f(s: &str) -> Expr {
        parse_filter(s).unwrap()
    }

    fn job() -> Value {
        json!({"Id": 42, "State": "Running", "ReleaseName": "It's Invoice", "CreationTime": "2026-11-30T08:00:00.000Z",
               "Robot": {"Id": 3, "Name": "robot-1"}, "HasErrors": false, "EndTime": null})
    }

    #[test]
    fn filters_clients_send_evaluate_as_uipath_does() {
        let j = job();
        for (filter, want) in [
            ("State eq 'Running'", true),
            ("state eq 'running'", true),
            ("State ne 'Running'", false),
            ("Id gt 41 and Id lt 43", true),
            ("Id ge 42 and Id le 42", true),
            ("Id eq 1 or Robot/Id eq 3", true),
            ("not (State eq 'Running')", false),
            ("State in ('Pending','Running')", true),
            ("(Id in (1,2,3))", false),
            ("ReleaseName eq 'It''s Invoice'", true),
            ("contains(ReleaseName,'invoice')", true),
            ("startswith(Robot/Name, 'robot')", true),
            ("endswith(Robot/Name,'-2')", false),
            ("CreationTime gt 2026-11-29T00:00:00Z", true),
            ("CreationTime lt datetime'2026-11-29T00:00:00Z'", false),
            ("HasErrors eq false", true),
            ("EndTime eq null", true),
            ("Missing eq null", true),
            ("State eq 'Running' and (Id eq 1 or Id eq 42)", true),
        ] {
            assert_eq!(eval(&f(filter), &j), want, "{filter}");
        }
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        for bad in [
            "State",
            "State eq",
            "State like 'x'",
            "(State eq 'x'",
            "State eq 'x' junk",
            "State eq 'open",
            "Id in 1",
            "eq 'x'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn orderby_and_select() {
        let mut v = vec![
            json!({"Id": 1, "Name": "b"}),
            json!({"Id": 2, "Name": "a"}),
            json!({"Id": 3, "Name": "b"}),
        ];
        order(&mut v, &parse_orderby("Name asc, Id desc").unwrap());
        let ids: Vec<i64> = v.iter().map(|x| x["Id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [2, 3, 1]);
        assert!(parse_orderby("Name sideways").is_err());
        assert_eq!(
            select(json!({"Id": 1, "Name": "x", "@odata.context": "c"}), &["id".into()]),
            json!({"Id": 1, "@odata.context": "c"})
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(s in "\\PC{0,60}") {
            let _ = parse_filter(&s);
            let _ = parse_orderby(&s);
        }

        #[test]
        fn a_quoted_value_round_trips(v in "[^\\p{C}]{0,20}") {
            let quoted = v.replace('\'', "''");
            let e = parse_filter(&format!("Name eq '{quoted}'")).unwrap();
            let entity = json!({"Name": v});
            prop_assert!(eval(&e, &entity));
        }

        #[test]
        fn ne_is_not_eq(n in -1000i64..1000, m in -1000i64..1000) {
            let eq = eval(&f(&format!("Id eq {m}")), &json!({"Id": n}));
            let ne = eval(&f(&format!("Id ne {m}")), &json!({"Id": n}));
            prop_assert_eq!(eq, !ne);
            prop_assert_eq!(eq, n == m);
        }
    }
}
