//! The two expression forms: infix as OpenSIPS' bundled tinyexpr reads it, and RPN.

/// Evaluates an infix expression: numbers, `+ - * / ^ %` (`%` the floating remainder),
/// parentheses, unary signs (binding tighter than `^`, so `-2^2` is 4), `^` grouping left
/// to right, and the one-argument functions `abs acos asin atan ceil cos cosh exp floor ln
/// log` (base 10) `sin sinh sqrt tan tanh`. `None` when it does not parse.
pub fn infix(text: &str) -> Option<f64> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let v = p.sum()?;
    p.blank();
    (p.at == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn blank(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.blank();
        self.s.get(self.at).copied()
    }

    fn sum(&mut self) -> Option<f64> {
        let mut v = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.at += 1;
            let r = self.term()?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Some(v)
    }

    fn term(&mut self) -> Option<f64> {
        let mut v = self.power()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.at += 1;
            let r = self.power()?;
            v = match op {
                b'*' => v * r,
                b'/' => v / r,
                _ => v % r,
            };
        }
        Some(v)
    }

    fn power(&mut self) -> Option<f64> {
        let mut v = self.unary()?;
        while self.peek() == Some(b'^') {
            self.at += 1;
            let r = self.unary()?;
            v = v.powf(r);
        }
        Some(v)
    }

    fn unary(&mut self) -> Option<f64> {
        match self.peek()? {
            b'-' => {
                self.at += 1;
                Some(-self.unary()?)
            }
            b'+' => {
                self.at += 1;
                self.unary()
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Option<f64> {
        let c = self.peek()?;
        if c == b'(' {
            self.at += 1;
            let v = self.sum()?;
            if self.peek()? != b')' {
                return None;
            }
            self.at += 1;
            return Some(v);
        }
        if c.is_ascii_digit() || c == b'.' {
            let start = self.at;
            while self
                .s
                .get(self.at)
                .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
            {
                self.at += 1;
            }
            if matches!(self.s.get(self.at), Some(b'e' | b'E')) {
                let save = self.at;
                self.at += 1;
                if matches!(self.s.get(self.at), Some(b'+' | b'-')) {
                    self.at += 1;
                }
                if self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                    while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                        self.at += 1;
                    }
                } else {
                    self.at = save;
                }
            }
            return std::str::from_utf8(&self.s[start..self.at])
                .ok()?
                .parse()
                .ok();
        }
        if c.is_ascii_alphabetic() {
            let start = self.at;
            while self.s.get(self.at).is_some_and(u8::is_ascii_alphanumeric) {
                self.at += 1;
            }
            let name = std::str::from_utf8(&self.s[start..self.at]).ok()?;
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "acos" => f64::acos,
                "asin" => f64::asin,
                "atan" => f64::atan,
                "ceil" => f64::ceil,
                "cos" => f64::cos,
                "cosh" => f64::cosh,
                "exp" => f64::exp,
                "floor" => f64::floor,
                "ln" => f64::ln,
                "log" => f64::log10,
                "sin" => f64::sin,
                "sinh" => f64::sinh,
                "sqrt" => f64::sqrt,
                "tan" => f64::tan,
                "tanh" => f64::tanh,
                _ => return None,
            };
            // A function takes the power expression after it (`sqrt 4`, `sqrt(4)`).
            return Some(f(self.power()?));
        }
        None
    }
}

/// Evaluates space-separated RPN: numbers, `+ - * / mod pow`, the functions `neg exp ln
/// log` (base 10) `abs sqrt cbrt floor ceil round nearbyint trunc`, the constants `e pi`, and
/// `drop dup swap`. The stack holds 100 values and must end with exactly one.
pub fn rpn(text: &str) -> Result<f64, String> {
    let mut stack: Vec<f64> = Vec::new();
    let pop = |stack: &mut Vec<f64>| stack.pop().ok_or_else(|| "stack underflow".to_owned());
    for token in text.split_whitespace() {
        let binary = |op: fn(f64, f64) -> f64, stack: &mut Vec<f64>| -> Result<(), String> {
            let b = pop(stack)?;
            let a = pop(stack)?;
            stack.push(op(a, b));
            Ok(())
        };
        let unary = |op: fn(f64) -> f64, stack: &mut Vec<f64>| -> Result<(), String> {
            let a = pop(stack)?;
            stack.push(op(a));
            Ok(())
        };
        match token {
            "+" => binary(|a, b| a + b, &mut stack)?,
            "-" => binary(|a, b| a - b, &mut stack)?,
            "*" => binary(|a, b| a * b, &mut stack)?,
            "/" => binary(|a, b| a / b, &mut stack)?,
            "mod" => binary(|a, b| a % b, &mut stack)?,
            "pow" => binary(f64::powf, &mut stack)?,
            "neg" => unary(|a| -a, &mut stack)?,
            "exp" => unary(f64::exp, &mut stack)?,
            "ln" => unary(f64::ln, &mut stack)?,
            "log" => unary(f64::log10, &mut stack)?,
            "abs" => unary(f64::abs, &mut stack)?,
            "sqrt" => unary(f64::sqrt, &mut stack)?,
            "cbrt" => unary(f64::cbrt, &mut stack)?,
            "floor" => unary(f64::floor, &mut stack)?,
            "ceil" => unary(f64::ceil, &mut stack)?,
            "round" => unary(f64::round, &mut stack)?,
            "nearbyint" => unary(f64::round_ties_even, &mut stack)?,
            "trunc" => unary(f64::trunc, &mut stack)?,
            "e" => stack.push(std::f64::consts::E),
            "pi" => stack.push(std::f64::consts::PI),
            "drop" => {
                pop(&mut stack)?;
            }
            "dup" => {
                let a = *stack.last().ok_or("stack underflow")?;
                stack.push(a);
            }
            "swap" => {
                let b = pop(&mut stack)?;
                let a = pop(&mut stack)?;
                stack.push(b);
                stack.push(a);
            }
            t => {
                let numeric = t.starts_with(|c: char| c.is_ascii_digit())
                    || (t.starts_with('-') && t[1..].starts_with(|c: char| c.is_ascii_digit()));
                let v: f64 = if numeric { t.parse().ok() } else { None }
                    .ok_or_else(|| format!("bad token `{t}`"))?;
                stack.push(v);
            }
        }
        if stack.len() > 100 {
            return Err("stack overflow".into());
        }
    }
    match stack.as_slice() {
        [v] => Ok(*v),
        _ => Err(format!("{} values left on the stack", stack.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infix_as_tinyexpr() {
        assert_eq!(infix("1 + 2 * 3"), Some(7.0));
        assert_eq!(infix("(1+2)*3"), Some(9.0));
        assert_eq!(infix("-2^2"), Some(4.0));
        assert_eq!(infix("2^3^2"), Some(64.0));
        assert_eq!(infix("7 % 4"), Some(3.0));
        assert_eq!(infix("sqrt(16) + log(100)"), Some(6.0));
        assert_eq!(infix("1e3 / 4"), Some(250.0));
        assert_eq!(infix("1/0"), Some(f64::INFINITY));
        assert!(infix("0/0").unwrap().is_nan());
        assert_eq!(infix("2 +"), None);
        assert_eq!(infix("pi"), None);
        assert_eq!(infix("(1"), None);
    }

    #[test]
    fn rpn_forms() {
        assert_eq!(rpn("3 4 + 2 *"), Ok(14.0));
        assert_eq!(rpn("2 10 pow"), Ok(1024.0));
        assert_eq!(rpn("1 2 swap -"), Ok(1.0));
        assert_eq!(rpn("5 dup *"), Ok(25.0));
        assert_eq!(rpn("7 3 mod"), Ok(1.0));
        assert_eq!(rpn("-2.5 round"), Ok(-3.0));
        assert_eq!(rpn("2.5 nearbyint"), Ok(2.0));
        assert_eq!(rpn("100 log"), Ok(2.0));
        assert!(rpn("1 2").is_err());
        assert!(rpn("+").is_err());
        assert!(rpn(".5").is_err());
        assert!(rpn("1 log10").is_err());
    }
}
