//! Condition expressions of transitions (seed 004): `{days} > 3 and
//! {days} < 10`, where `{key}` is a ticket field's value.
//!
//! A small, closed language (nothing is evaluated as code): numbers,
//! strings in single or double quotes, `True`/`False`/`None`, field
//! references `{key}`, `+ - * / %`, comparisons `== != < <= > >=`, `in` /
//! `not in` (a substring, or a member of a comma-separated list), `and`,
//! `or`, `not`, parentheses. A field's text that reads as a number compares
//! as a number, as the values of a form do. A field with no value is `None`;
//! comparing `None` with `<` is false, never an error.
//!
//! An expression is parsed when its workflow is loaded ([`Expr::parse`]),
//! so a definition that does not parse is refused then, with the reason.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(V),
    /// `{key}`.
    Field(String),
    /// `not e`, `-e`.
    Unary(Op1, Box<Expr>),
    /// `a op b`.
    Binary(Op2, Box<Expr>, Box<Expr>),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op1 {
    /// `not`.
    Not,
    /// `-`.
    Neg,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op2 {
    /// `or`.
    Or,
    /// `and`.
    And,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `in`.
    In,
    /// `not in`.
    NotIn,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
}

/// A value while evaluating.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    /// `None`, or a field with no value.
    Null,
    /// `True` / `False`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

impl V {
    fn truthy(&self) -> bool {
        match self {
            V::Null => false,
            V::Bool(b) => *b,
            V::Num(n) => *n != 0.0,
            V::Str(s) => !s.is_empty(),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            V::Num(n) => Some(*n),
            V::Bool(b) => Some(f64::from(u8::from(*b))),
            V::Str(s) => s.trim().parse().ok(),
            V::Null => None,
        }
    }

    fn text(&self) -> String {
        match self {
            V::Null => String::new(),
            V::Bool(b) => if *b { "True" } else { "False" }.into(),
            V::Num(n) => n.to_string(),
            V::Str(s) => s.clone(),
        }
    }

    /// The value of a ticket field.
    pub fn of(v: Option<&Value>) -> V {
        match v {
            None | Some(Value::Null) => V::Null,
            Some(Value::Bool(b)) => V::Bool(*b),
            Some(Value::Number(n)) => n.as_f64().map_or(V::Null, V::Num),
            Some(Value::String(s)) => V::Str(s.clone()),
            Some(other) => V::Str(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Field(String),
    Word(String),
    Sym(&'static str),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '{' {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '}')
                .ok_or_else(|| format!("'{{' at {i} is not closed"))?;
            let key: String = chars[i + 1..i + end].iter().collect();
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("empty field reference at {i}"));
            }
            out.push(Tok::Field(key.to_owned()));
            i += end + 1;
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&q| q == c)
                .ok_or_else(|| format!("string at {i} is not closed"))?;
            out.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Tok::Num(text.parse().map_err(|_| format!("bad number {text}"))?));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = ["==", "!=", "<=", ">="]
                .into_iter()
                .find(|s| *s == two)
                .or_else(|| {
                    ["<", ">", "+", "-", "*", "/", "%", "(", ")"]
                        .into_iter()
                        .find(|s| s.starts_with(c))
                })
                .ok_or_else(|| format!("unexpected '{c}' at {i}"))?;
            out.push(Tok::Sym(sym));
            i += sym.len();
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.word("or") {
            self.at += 1;
            e = Expr::Binary(Op2::Or, Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.word("and") {
            self.at += 1;
            e = Expr::Binary(Op2::And, Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.word("not") {
            self.at += 1;
            return Ok(Expr::Unary(Op1::Not, Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let left = self.sum()?;
        let op = match self.peek() {
            Some(Tok::Sym("==")) => Op2::Eq,
            Some(Tok::Sym("!=")) => Op2::Ne,
            Some(Tok::Sym("<")) => Op2::Lt,
            Some(Tok::Sym("<=")) => Op2::Le,
            Some(Tok::Sym(">")) => Op2::Gt,
            Some(Tok::Sym(">=")) => Op2::Ge,
            Some(Tok::Word(w)) if w == "in" => Op2::In,
            Some(Tok::Word(w))
                if w == "not" && matches!(self.toks.get(self.at + 1), Some(Tok::Word(x)) if x == "in") =>
            {
                self.at += 1;
                Op2::NotIn
            }
            _ => return Ok(left),
        };
        self.at += 1;
        let right = self.sum()?;
        Ok(Expr::Binary(op, Box::new(left), Box::new(right)))
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        loop {
            let op = if self.sym("+") {
                Op2::Add
            } else if self.sym("-") {
                Op2::Sub
            } else {
                return Ok(e);
            };
            self.at += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        loop {
            let op = if self.sym("*") {
                Op2::Mul
            } else if self.sym("/") {
                Op2::Div
            } else if self.sym("%") {
                Op2::Rem
            } else {
                return Ok(e);
            };
            self.at += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.sym("-") {
            self.at += 1;
            return Ok(Expr::Unary(Op1::Neg, Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let t = self.peek().cloned().ok_or("the expression ends too early")?;
        self.at += 1;
        Ok(match t {
            Tok::Num(n) => Expr::Lit(V::Num(n)),
            Tok::Str(s) => Expr::Lit(V::Str(s)),
            Tok::Field(f) => Expr::Field(f),
            Tok::Word(w) => match w.as_str() {
                "True" | "true" => Expr::Lit(V::Bool(true)),
                "False" | "false" => Expr::Lit(V::Bool(false)),
                "None" | "null" => Expr::Lit(V::Null),
                other => return Err(format!("unknown word '{other}' (fields are written {{key}})")),
            },
            Tok::Sym("(") => {
                let e = self.or()?;
                if !self.sym(")") {
                    return Err("'(' is not closed".into());
                }
                self.at += 1;
                e
            }
            Tok::Sym(s) => return Err(format!("unexpected '{s}'")),
        })
    }
}

impl Expr {
    /// Parses `src`; the error says what is wrong and where.
    pub fn parse(src: &str) -> Result<Expr, String> {
        let mut p = Parser { toks: lex(src)?, at: 0 };
        let e = p.or()?;
        if p.at != p.toks.len() {
            return Err(format!("unexpected text after the expression in '{src}'"));
        }
        Ok(e)
    }

    /// The field keys it reads.
    pub fn fields(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Field(f) => {
                out.insert(f.as_str());
            }
            Expr::Unary(_, e) => e.collect(out),
            Expr::Binary(_, a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// Whether it holds for the ticket values `fields`.
    pub fn holds(&self, fields: &Map<String, Value>) -> bool {
        self.eval(fields).truthy()
    }

    /// Its value for the ticket values `fields`.
    pub fn eval(&self, fields: &Map<String, Value>) -> V {
        match self {
            Expr::Lit(v) => v.clone(),
            Expr::Field(f) => V::of(fields.get(f)),
            Expr::Unary(Op1::Not, e) => V::Bool(!e.eval(fields).truthy()),
            Expr::Unary(Op1::Neg, e) => e.eval(fields).number().map_or(V::Null, |n| V::Num(-n)),
            Expr::Binary(Op2::Or, a, b) => V::Bool(a.eval(fields).truthy() || b.eval(fields).truthy()),
            Expr::Binary(Op2::And, a, b) => V::Bool(a.eval(fields).truthy() && b.eval(fields).truthy()),
            Expr::Binary(op, a, b) => binary(*op, a.eval(fields), b.eval(fields)),
        }
    }
}

fn binary(op: Op2, a: V, b: V) -> V {
    use std::cmp::Ordering;
    let order = || -> Option<Ordering> {
        match (&a, &b) {
            (V::Null, _) | (_, V::Null) => None,
            (V::Str(x), V::Str(y)) => match (x.trim().parse::<f64>(), y.trim().parse::<f64>()) {
                (Ok(m), Ok(n)) => m.partial_cmp(&n),
                _ => Some(x.cmp(y)),
            },
            _ => a.number()?.partial_cmp(&b.number()?),
        }
    };
    let equal = || match (&a, &b) {
        (V::Null, V::Null) => true,
        (V::Null, _) | (_, V::Null) => false,
        _ => order() == Some(Ordering::Equal) || a.text() == b.text(),
    };
    let contains = || {
        let hay = b.text();
        let needle = a.text();
        hay.split(',').any(|p| p.trim() == needle) || hay.contains(&needle)
    };
    let arith = |f: fn(f64, f64) -> Option<f64>| match (a.number(), b.number()) {
        (Some(x), Some(y)) => f(x, y).map_or(V::Null, V::Num),
        _ if op == Op2::Add => V::Str(a.text() + &b.text()),
        _ => V::Null,
    };
    match op {
        Op2::Eq => V::Bool(equal()),
        Op2::Ne => V::Bool(!equal()),
        Op2::Lt => V::Bool(order() == Some(Ordering::Less)),
        Op2::Le => V::Bool(matches!(order(), Some(Ordering::Less | Ordering::Equal))),
        Op2::Gt => V::Bool(order() == Some(Ordering::Greater)),
        Op2::Ge => V::Bool(matches!(order(), Some(Ordering::Greater | Ordering::Equal))),
        Op2::In => V::Bool(contains()),
        Op2::NotIn => V::Bool(!contains()),
        Op2::Add => arith(|x, y| Some(x + y)),
        Op2::Sub => arith(|x, y| Some(x - y)),
        Op2::Mul => arith(|x, y| Some(x * y)),
        Op2::Div => arith(|x, y| (y != 0.0).then(|| x / y)),
        Op2::Rem => arith(|x, y| (y != 0.0).then(|| x % y)),
        Op2::Or | Op2::And => unreachable!("short-circuited in eval"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(src: &str, fields: Value) -> bool {
        Expr::parse(src).unwrap().holds(fields.as_object().unwrap())
    }

    #[test]
    fn the_seeds_example_compares_a_field_with_numbers() {
        let e = "{days} > 3 and {days}<10";
        assert!(holds(e, json!({"days": 5})));
        assert!(holds(e, json!({"days": "5"})), "a form's text reads as a number");
        assert!(!holds(e, json!({"days": 3})));
        assert!(!holds(e, json!({"days": 10.5})));
        assert!(!holds(e, json!({})), "a missing field compares false");
    }

    #[test]
    fn strings_booleans_membership_and_arithmetic() {
        assert!(holds("{kind} == 'vpn' or {kind} == \"ssh\"", json!({"kind": "ssh"})));
        assert!(holds("not {urgent}", json!({"urgent": false})));
        assert!(holds("'ops' in {teams}", json!({"teams": "dev,ops"})));
        assert!(holds("'qa' not in {teams}", json!({"teams": "dev,ops"})));
        assert!(holds("{amount} * 2 >= 100 + {fee}", json!({"amount": 60, "fee": 20})));
        assert!(holds("({a} > 1 or {b} > 1) and {c} == None", json!({"a": 2, "b": 0})));
        assert!(
            holds("{x} / 0 == None", json!({"x": 1})),
            "division by zero is None, not a crash"
        );
        assert!(holds("-{x} < 0", json!({"x": 4})));
    }

    #[test]
    fn malformed_expressions_are_refused_with_the_reason() {
        for (src, why) in [
            ("{days > 3", "not closed"),
            ("{days} >", "ends too early"),
            ("days > 3", "unknown word"),
            ("({a} > 1", "not closed"),
            ("{a} > 1 2", "unexpected text"),
            ("{a} ^ 2", "unexpected '^'"),
            ("'open", "not closed"),
            ("{} > 1", "empty field"),
        ] {
            let e = Expr::parse(src).unwrap_err();
            assert!(e.contains(why), "{src}: {e}");
        }
    }

    #[test]
    fn the_fields_an_expression_reads_are_listed() {
        let e = Expr::parse("{a} > 1 and ({b} == 'x' or not {a})").unwrap();
        assert_eq!(e.fields().into_iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
